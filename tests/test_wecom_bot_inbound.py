"""WeCom 智能机器人 callbacks through the real route: group and one-to-one messages, the
@-prefix, mixed content, the encrypted enter_chat welcome, retries, and every refusal."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from bot.adapters.base import HttpRequest
from bot.adapters.wecom_bot_inbound import WELCOME, WeComBotWebhook
from bot.clock import SHANGHAI, FixedClock
from bot.messages import ChatRef, Media, ReplyRoute
from tests.fakes import FakeWeCom, ManualClock
from tests.test_wecom_inbound import (
    BILLION_LAUGHS,
    WINDOW,
    Bot,
    Query,
    StartBot,
    assert_refused,
    bad_padding_ciphertext,
    bot_starter,
    stamp,
)

GROUP = "wrkGROUP1"
IMAGE = "https://fake.invalid/image"


@pytest.fixture
async def wecom(aiohttp_server: Any, clock: FixedClock) -> FakeWeCom:
    fake = FakeWeCom(clock=lambda: clock.now().timestamp())
    await fake.start(aiohttp_server)
    return fake


@pytest.fixture
def start_bot(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock, wecom: FakeWeCom
) -> StartBot:
    return bot_starter(aiohttp_client, database_url, tmp_path, clock, wecom)


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    return await start_bot()


def payload(
    fake: FakeWeCom, msgtype: str, chatid: str | None = GROUP, **fields: Any
) -> dict[str, Any]:
    """A message callback's plaintext, for shapes the fake's helper does not build."""
    base: dict[str, Any] = {
        "msgid": "m-custom",
        "aibotid": fake.aibot_id,
        "chattype": "group" if chatid else "single",
        "from": {"userid": "lisi"},
        "create_time": int(fake.clock()),
        "response_url": "https://fake.invalid/response",
        "msgtype": msgtype,
    }
    if chatid:
        base["chatid"] = chatid
    return base | fields


# --- valid callbacks ----------------------------------------------------------------------------


async def test_url_verification_uses_the_empty_receiveid(bot: Bot, wecom: FakeWeCom) -> None:
    query, echo = wecom.url_verification(aibot=True)
    status, body = await bot.get("wecom-bot", query)
    assert (status, body.decode()) == (200, echo)


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("@督办助手 打卡 T01 已完成", "打卡 T01 已完成"),
        ("@督办助手\u2005打卡 T01 已完成", "打卡 T01 已完成"),
        ("  @督办助手\n打卡\n第二行 ", "打卡\n第二行"),
        ("@督办助手", ""),
        ("打卡 @督办助手", "打卡 @督办助手"),  # only a leading mention is the bot's
    ],
)
async def test_group_text_loses_the_bots_mention(
    bot: Bot, wecom: FakeWeCom, clock: FixedClock, content: str, text: str
) -> None:
    url = wecom.response_url(GROUP)
    query, body = wecom.signed_aibot_callback(content, "lisi", GROUP, "m-1", url)
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert msg.text == text
    assert msg.chat == ChatRef("wecom", GROUP, is_group=True)
    assert (msg.event_id, msg.sender_id, msg.source) == ("m-1", "lisi", "wecom_aibot")
    assert msg.reply_route == ReplyRoute(
        "wecom_response_url", url, clock.now() + timedelta(hours=1)
    )
    assert await bot.seen() == 1


async def test_single_chat_keeps_its_text(bot: Bot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_aibot_callback("@某人 帮助", "wangwu", None, "m-2")
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.text, msg.chat) == ("@某人 帮助", ChatRef("wecom", "wangwu", is_group=False))
    assert msg.reply_route is not None and msg.reply_route.url.startswith(wecom.base_url)


async def test_image(bot: Bot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_aibot_callback("", "lisi", GROUP, "m-3", msgtype="image")
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.text, msg.media) == ("", (Media("image", IMAGE),))


async def test_mixed_joins_text_and_keeps_images(bot: Bot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_aibot_callback(
        "@督办助手 打卡 T01", "lisi", GROUP, "m-4", msgtype="mixed"
    )
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.text, msg.media) == ("打卡 T01", (Media("image", IMAGE),))


async def test_mixed_with_several_parts(bot: Bot, wecom: FakeWeCom) -> None:
    items = [
        {"msgtype": "text", "text": {"content": "@督办助手 打卡 T01"}},
        {"msgtype": "image", "image": {"url": "https://fake.invalid/a"}},
        {"msgtype": "text", "text": {"content": "会议照片两张"}},
        {"msgtype": "image", "image": {"url": "https://fake.invalid/b"}},
        {"msgtype": "sticker"},  # parts of unknown kinds are skipped, not refused
    ]
    query, body = wecom.encrypt_aibot_json(payload(wecom, "mixed", mixed={"msg_item": items}))
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert msg.text == "打卡 T01\n会议照片两张"
    assert msg.media == (
        Media("image", "https://fake.invalid/a"),
        Media("image", "https://fake.invalid/b"),
    )


@pytest.mark.parametrize(
    ("msgtype", "fields", "text", "media"),
    [
        ("voice", {"voice": {"content": "打卡"}}, "打卡", ()),
        (
            "file",
            {"file": {"url": "https://fake.invalid/f"}},
            "",
            (Media("file", "https://fake.invalid/f"),),
        ),
    ],
)
async def test_voice_and_file(
    bot: Bot,
    wecom: FakeWeCom,
    msgtype: str,
    fields: dict[str, Any],
    text: str,
    media: tuple[Media, ...],
) -> None:
    query, body = wecom.encrypt_aibot_json(payload(wecom, msgtype, None, **fields))
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.text, msg.media) == (text, media)


async def test_reply_route_expiry_counts_from_create_time(
    bot: Bot, wecom: FakeWeCom, clock: FixedClock
) -> None:
    sent_at = int(wecom.clock()) - 600  # delivered ten minutes late
    query, body = wecom.signed_aibot_callback("帮助", "lisi", None, "m-5", create_time=sent_at)
    await bot.post("wecom-bot", query, body)
    (msg,) = bot.dispatched
    assert msg.reply_route is not None
    assert msg.reply_route.expires_at == clock.now() + timedelta(minutes=50)


@pytest.mark.parametrize(
    ("create_time", "lifetime"),
    [
        (10**30, 60),
        (-(10**30), 0),
        (float("nan"), 60),
        ("yesterday", 60),
        (None, 60),
    ],
)
async def test_reply_route_survives_odd_create_times(
    bot: Bot, wecom: FakeWeCom, clock: FixedClock, create_time: Any, lifetime: int
) -> None:
    message = payload(wecom, "text", None, text={"content": "帮助"}, create_time=create_time)
    query, body = wecom.encrypt_aibot_json(message)
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert msg.reply_route is not None
    assert msg.reply_route.expires_at == clock.now() + timedelta(minutes=lifetime)


async def test_enter_chat_gets_an_encrypted_welcome(bot: Bot, wecom: FakeWeCom) -> None:
    event = payload(wecom, "event", None, event={"eventtype": "enter_chat"})
    del event["response_url"]
    query, body = wecom.encrypt_aibot_json(event)
    async with bot.client.post("/hooks/wecom-bot", params=query, json=body) as resp:
        assert (resp.status, resp.content_type) == (200, "application/json")
        reply = await resp.json()
    assert wecom.decrypt_aibot_reply(reply) == {"msgtype": "text", "text": {"content": WELCOME}}
    assert reply["nonce"] == query["nonce"]
    assert (bot.dispatched, await bot.seen()) == ([], 0)


@pytest.mark.parametrize("eventtype", ["template_card_event", "feedback_event", "unheard_of"])
async def test_other_events_are_acknowledged(bot: Bot, wecom: FakeWeCom, eventtype: str) -> None:
    event = payload(wecom, "event", GROUP, event={"eventtype": eventtype})
    query, body = wecom.encrypt_aibot_json(event)
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    assert (bot.dispatched, await bot.seen()) == ([], 0)


async def test_unknown_msgtype_is_ignored(
    bot: Bot, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    query, body = wecom.encrypt_aibot_json(payload(wecom, "hologram", hologram={"x": 1}))
    caplog.clear()
    assert await bot.post("wecom-bot", query, body) == (200, b"")
    assert (bot.dispatched, await bot.seen()) == ([], 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("type hologram from lisi ignored" in r.getMessage() for r in caplog.records)


async def test_retries_and_restart_dispatch_once(start_bot: StartBot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_aibot_callback("@督办助手 打卡", "lisi", GROUP, "m-retry")
    bot = await start_bot()
    for _ in range(4):  # the first delivery and WeCom's three retries
        assert await bot.post("wecom-bot", query, body) == (200, b"")
    assert [m.event_id for m in bot.dispatched] == ["m-retry"]
    await bot.client.close()

    restarted = await start_bot()
    assert await restarted.post("wecom-bot", query, body) == (200, b"")
    assert restarted.dispatched == []
    assert await restarted.seen() == 1


# --- refusals -----------------------------------------------------------------------------------

Case = Callable[[FakeWeCom], tuple[Query, str | dict[str, Any]]]


def _text(fake: FakeWeCom) -> tuple[Query, dict[str, str]]:
    return fake.signed_aibot_callback("@督办助手 打卡", "lisi", GROUP, "m-bad", "https://r.invalid")


def _plain(**fields: Any) -> Case:
    """A well-signed callback whose decrypted payload is the message with ``fields`` changed."""

    def case(fake: FakeWeCom) -> tuple[Query, dict[str, str]]:
        body = payload(fake, "text", text={"content": "x"})
        for name, value in fields.items():
            if value is None:
                del body[name]
            else:
                body[name] = value
        return fake.encrypt_aibot_json(body)

    return case


def _ciphertext(make: Callable[[FakeWeCom], str]) -> Case:
    """A well-signed outer body around whatever ciphertext ``make`` forges."""

    def case(fake: FakeWeCom) -> tuple[Query, dict[str, str]]:
        encrypted = make(fake)
        return stamp(fake, encrypted), {"encrypt": encrypted}

    return case


def _encrypted(plaintext: str) -> Case:
    return _ciphertext(lambda fake: fake.aibot_crypto.encrypt(plaintext, "1", "1")[0])


def _old(fake: FakeWeCom) -> tuple[Query, dict[str, str]]:
    message = payload(fake, "text", text={"content": "x"})
    return fake.encrypt_aibot_json(message, timestamp=str(int(fake.clock()) - WINDOW - 1))


def _outer(body: str) -> Case:
    return lambda fake: (stamp(fake, "x"), body)


def _query(change: Callable[[Query], Query]) -> Case:
    def case(fake: FakeWeCom) -> tuple[Query, dict[str, str]]:
        query, body = _text(fake)
        return change(query), body

    return case


REFUSALS = [
    pytest.param(
        403,
        "msg_signature mismatch",
        _query(lambda q: q | {"msg_signature": "0" * 40}),
        id="bad signature",
    ),
    pytest.param(
        400,
        "parameter msg_signature",
        _query(lambda q: {k: v for k, v in q.items() if k != "msg_signature"}),
        id="no signature",
    ),
    pytest.param(403, "replay window", _old, id="old timestamp"),
    pytest.param(
        400,
        "receiveid mismatch",
        _ciphertext(lambda f: f.app_crypto.encrypt("{}", "1", "1")[0]),
        id="wrong receiveid",
    ),
    pytest.param(400, "not valid base64", _ciphertext(lambda f: "not base64!"), id="bad base64"),
    pytest.param(
        400,
        "bad padding",
        _ciphertext(lambda f: bad_padding_ciphertext(f, "")),
        id="bad padding",
    ),
    pytest.param(400, "body is not valid JSON", _outer('{"encrypt": '), id="malformed JSON"),
    pytest.param(400, "body is not a JSON object", _outer('["encrypt"]'), id="JSON not an object"),
    pytest.param(400, "body is not valid JSON", _outer(BILLION_LAUGHS), id="XML body"),
    pytest.param(400, "missing encrypt", _outer('{"encrypted": "x"}'), id="no encrypt"),
    pytest.param(
        400, "plaintext is not valid JSON", _encrypted("<xml>not json</xml>"), id="inner not JSON"
    ),
    pytest.param(400, "plaintext is not a JSON object", _encrypted("[1, 2]"), id="inner array"),
    pytest.param(400, "without chatid", _plain(chatid=None), id="group without chatid"),
    pytest.param(400, "without msgid", _plain(msgid=None), id="no msgid"),
    pytest.param(400, "from.userid", _plain(**{"from": {"name": "x"}}), id="no userid"),
    pytest.param(400, "chattype", _plain(chattype="channel"), id="bad chattype"),
    pytest.param(400, "image message without url", _plain(msgtype="image"), id="image without url"),
    pytest.param(
        400, "msg_item", _plain(msgtype="mixed", mixed={"msg_item": "x"}), id="mixed without list"
    ),
    pytest.param(
        413, "over 1 MiB", _outer('{"encrypt": "' + "A" * (1 << 20) + '"}'), id="over 1 MiB"
    ),
]


@pytest.mark.parametrize(("status", "reason", "case"), REFUSALS)
async def test_refusals(
    bot: Bot,
    wecom: FakeWeCom,
    caplog: pytest.LogCaptureFixture,
    status: int,
    reason: str,
    case: Case,
) -> None:
    query, body = case(wecom)

    async def send() -> tuple[int, bytes]:
        return await bot.post("wecom-bot", query, body)

    await assert_refused(bot, wecom, caplog, status, reason, send)


# --- property: any text survives the whole envelope ----------------------------------------------

_FAKE = FakeWeCom(clock=ManualClock())
_BOT = WeComBotWebhook(_FAKE.token, _FAKE.encoding_aes_key, WINDOW)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    msgid=st.text(min_size=1, max_size=64),
)
def test_any_text_round_trips(text: str, msgid: str) -> None:
    query, body = _FAKE.signed_aibot_callback(text, "lisi", None, msgid, "https://r.invalid")
    request = HttpRequest("POST", query, CIMultiDict(), json.dumps(body).encode())
    (msg,) = _BOT.handle(request, datetime.fromtimestamp(_FAKE.clock(), SHANGHAI)).messages
    assert (msg.text, msg.event_id) == (text.strip(), msgid)
