"""WeCom self-built app callbacks through the real route: published vectors, messages, events,
retries across restarts, and every way a request can be refused."""

from __future__ import annotations

import base64
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from sqlalchemy import func, select

from bot.adapters.base import HttpRequest
from bot.adapters.wecom_crypto import WeComCrypto
from bot.adapters.wecom_inbound import WeComAppWebhook
from bot.app import DEPS, create_app
from bot.clock import SHANGHAI, FixedClock
from bot.deployment import load
from bot.messages import ChatRef, Inbound, Media
from bot.models import InboundSeen
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeWeCom, ManualClock
from tests.fakes.wecom_inbound import plain_xml

WINDOW = 3600

V1_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
V1_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
V1_CORPID = "ww1436e0e65a779aee"
V1_ECHOSTR = (
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
)
V1_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAg"
    "GzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9"
    "U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qA"
    "RR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL"
    "6aSDPOYuPDGOCI8jmnKiypE+"
)

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><xml><Content>&lol9;</Content></xml>"
)
XXE = '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>'

Query = dict[str, str]


# --- harness: the real app over HTTP, a recording dispatch, the fake as WeCom's client side ---


@dataclass
class Bot:
    client: TestClient[Any, Any]
    dispatched: list[Inbound]

    async def get(self, path: str, query: Query) -> tuple[int, bytes]:
        async with self.client.get(f"/hooks/{path}", params=query) as resp:
            return resp.status, await resp.read()

    async def post(
        self, path: str, query: Query, body: str | bytes | dict[str, Any]
    ) -> tuple[int, bytes]:
        kwargs: dict[str, Any] = (
            {"json": body}
            if isinstance(body, dict)
            else {"data": body.encode() if isinstance(body, str) else body}
        )
        async with self.client.post(f"/hooks/{path}", params=query, **kwargs) as resp:
            status, payload = resp.status, await resp.read()
        await self.client.app[DEPS].inbox.drain()
        return status, payload

    async def seen(self) -> int:
        async with self.client.app[DEPS].db.begin() as session:
            count = await session.scalar(select(func.count()).select_from(InboundSeen))
        return int(count or 0)


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def wecom(aiohttp_server: Any, clock: FixedClock) -> FakeWeCom:
    fake = FakeWeCom(clock=lambda: clock.now().timestamp())
    await fake.start(aiohttp_server)
    return fake


def bot_starter(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock, wecom: FakeWeCom
) -> StartBot:
    """Start (or, called again, restart) the bot on the test's database, both WeCom hooks on."""
    conf = write(tmp_path / "conf", mini())

    async def start(
        token: str = wecom.token, aes_key: str = wecom.encoding_aes_key, corp_id: str = wecom.corpid
    ) -> Bot:
        app_settings = Settings(
            database_url=database_url,
            config=conf,
            scheduler_enabled=False,
            wecom_corp_id=corp_id,
            wecom_token=token,
            wecom_aes_key=aes_key,
            wecom_bot_token=token,
            wecom_bot_aes_key=aes_key,
            callback_window_seconds=WINDOW,
        )
        dispatched: list[Inbound] = []

        async def dispatch(msg: Inbound) -> None:
            dispatched.append(msg)

        app = create_app(
            app_settings, clock=clock, deployment=load(conf, env=ENV), dispatch=dispatch
        )
        return Bot(await aiohttp_client(app), dispatched)

    return start


@pytest.fixture
def start_bot(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock, wecom: FakeWeCom
) -> StartBot:
    return bot_starter(aiohttp_client, database_url, tmp_path, clock, wecom)


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    return await start_bot()


async def assert_refused(
    bot: Bot,
    fake: FakeWeCom,
    caplog: pytest.LogCaptureFixture,
    status: int,
    reason: str,
    sent: Callable[[], Awaitable[tuple[int, bytes]]],
) -> None:
    """The status, one warning line, no traceback, no secret in the logs, nothing kept or run."""
    caplog.clear()
    got, _ = await sent()
    assert got == status
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert reason in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text
    assert fake.token not in caplog.text
    assert fake.encoding_aes_key not in caplog.text
    assert await bot.seen() == 0
    assert bot.dispatched == []


def raw_encrypt(encoding_aes_key: str, plain: bytes) -> str:
    """AES-CBC under the callback key with no padding applied, to forge bad plaintexts."""
    key = base64.b64decode(encoding_aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def bad_padding_ciphertext(fake: FakeWeCom, receive_id: str) -> str:
    msg = b"{}" if not receive_id else b"<xml/>"
    plain = b"R" * 16 + struct.pack(">I", len(msg)) + msg + receive_id.encode()
    plain += b"\x00" * (-len(plain) % 32 or 32)  # a zero pad byte is never valid
    return raw_encrypt(fake.encoding_aes_key, plain)


def stamp(fake: FakeWeCom, encrypted: str, ts: str = "", nonce: str = "4242") -> Query:
    ts = ts or str(int(fake.clock()))
    return {
        "msg_signature": fake.app_crypto.signature(ts, nonce, encrypted),
        "timestamp": ts,
        "nonce": nonce,
    }


def app_xml(fake: FakeWeCom, **fields: str | int) -> str:
    base: dict[str, str | int] = {
        "ToUserName": fake.corpid,
        "FromUserName": "zhangsan",
        "CreateTime": int(fake.clock()),
        "AgentID": fake.agentid,
    }
    return plain_xml(base | fields)


def outer_xml(fake: FakeWeCom, encrypted: str) -> str:
    return plain_xml({"ToUserName": fake.corpid, "Encrypt": encrypted, "AgentID": "1000002"})


# --- published vector V1 ------------------------------------------------------------------------


async def test_v1_url_verification_and_message(start_bot: StartBot, clock: FixedClock) -> None:
    bot = await start_bot(token=V1_TOKEN, aes_key=V1_KEY, corp_id=V1_CORPID)
    clock.at = datetime.fromtimestamp(1476416373 + 5, SHANGHAI)
    query = {
        "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "timestamp": "1476416373",
        "nonce": "47744683",
        "echostr": V1_ECHOSTR,
    }
    assert await bot.get("wecom", query) == (200, b"1288432023552776189")

    clock.at = datetime.fromtimestamp(1476422779 + 1, SHANGHAI)
    body = (
        f"<xml><ToUserName><![CDATA[{V1_CORPID}]]></ToUserName>\n"
        f"<Encrypt><![CDATA[{V1_ENCRYPT}]]></Encrypt>\n"
        "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
    )
    query = {
        "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
        "timestamp": "1476422779",
        "nonce": "1597212914",
    }
    assert await bot.post("wecom", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.event_id, msg.sender_id, msg.text) == ("1456453720", "ChenJiaShun", "你好")
    assert msg.chat == ChatRef("wecom", "ChenJiaShun", is_group=False)
    assert (msg.platform, msg.source, msg.received_at) == ("wecom", "wecom_app", clock.now())


# --- valid callbacks ----------------------------------------------------------------------------


async def test_url_verification_answers_the_plaintext(bot: Bot, wecom: FakeWeCom) -> None:
    query, echo = wecom.url_verification()
    status, body = await bot.get("wecom", query)
    assert (status, body.decode()) == (200, echo)


async def test_text_message(bot: Bot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_app_callback("  打卡 T01 已完成\n", "lisi", msg_id=7001)
    assert await bot.post("wecom", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert msg.text == "打卡 T01 已完成"
    assert (msg.event_id, msg.sender_id, msg.media, msg.reply_route) == ("7001", "lisi", (), None)
    assert msg.chat == ChatRef("wecom", "lisi", is_group=False)
    assert await bot.seen() == 1


@pytest.mark.parametrize(
    ("fields", "media"),
    [
        (
            {"MsgType": "image", "PicUrl": "https://p.invalid/1.jpg", "MediaId": "MEDIA_1"},
            Media("image", "MEDIA_1"),
        ),
        (
            {"MsgType": "image", "PicUrl": "https://p.invalid/2.jpg"},
            Media("image", "https://p.invalid/2.jpg"),
        ),
        ({"MsgType": "file", "MediaId": "FILE_1"}, Media("file", "FILE_1")),
        ({"MsgType": "voice", "MediaId": "VOICE_1", "Format": "amr"}, Media("voice", "VOICE_1")),
    ],
)
async def test_media_message(
    bot: Bot, wecom: FakeWeCom, fields: dict[str, str], media: Media
) -> None:
    query, body = wecom.encrypt_app_xml(app_xml(wecom, MsgId=7002, **fields))
    assert await bot.post("wecom", query, body) == (200, b"")
    (msg,) = bot.dispatched
    assert (msg.text, msg.media, msg.event_id) == ("", (media,), "7002")


@pytest.mark.parametrize("event", ["subscribe", "enter_agent", "click"])
async def test_events_are_acknowledged_and_not_dispatched(
    bot: Bot, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture, event: str
) -> None:
    caplog.set_level(logging.INFO, logger="bot.adapters.wecom_inbound")
    query, body = wecom.signed_app_event(event, "wangwu", event_key="k")
    assert await bot.post("wecom", query, body) == (200, b"")
    assert (bot.dispatched, await bot.seen()) == ([], 0)
    assert any(f"event {event} from wangwu" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("msg_type", ["location", "link", "shiny_new_type"])
async def test_unknown_message_type_is_ignored(
    bot: Bot, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture, msg_type: str
) -> None:
    caplog.set_level(logging.INFO)
    query, body = wecom.encrypt_app_xml(app_xml(wecom, MsgType=msg_type, MsgId=7003))
    caplog.clear()
    assert await bot.post("wecom", query, body) == (200, b"")
    assert (bot.dispatched, await bot.seen()) == ([], 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(f"type {msg_type} from zhangsan ignored" in r.getMessage() for r in caplog.records)


async def test_retries_and_restart_dispatch_once(start_bot: StartBot, wecom: FakeWeCom) -> None:
    query, body = wecom.signed_app_callback("打卡", "lisi", msg_id=9001)
    bot = await start_bot()
    for _ in range(4):  # the first delivery and WeCom's three retries
        assert await bot.post("wecom", query, body) == (200, b"")
    assert [m.event_id for m in bot.dispatched] == ["9001"]
    await bot.client.close()

    restarted = await start_bot()
    assert await restarted.post("wecom", query, body) == (200, b"")
    assert restarted.dispatched == []
    assert await restarted.seen() == 1


# --- refusals -----------------------------------------------------------------------------------


def _with(query: Query, **changes: str) -> Query:
    return query | changes


def _without(query: Query, name: str) -> Query:
    return {k: v for k, v in query.items() if k != name}


Case = Callable[[FakeWeCom], tuple[str, Query, str | bytes]]


def _text(fake: FakeWeCom, **kw: Any) -> tuple[Query, str]:
    return fake.signed_app_callback("打卡", "lisi", msg_id=8001, **kw)


def _encrypted(fake: FakeWeCom, encrypted: str) -> tuple[str, Query, str]:
    return "POST", stamp(fake, encrypted), outer_xml(fake, encrypted)


def _old(fake: FakeWeCom) -> tuple[str, Query, str]:
    return "POST", *_text(fake, timestamp=str(int(fake.clock()) - WINDOW - 1))


def _future(fake: FakeWeCom) -> tuple[str, Query, str]:
    return "POST", *_text(fake, timestamp=str(int(fake.clock()) + WINDOW + 1))


def _bad_signature(fake: FakeWeCom) -> tuple[str, Query, str]:
    query, body = _text(fake)
    return "POST", _with(query, msg_signature="0" * 40), body


def _missing(name: str) -> Case:
    def case(fake: FakeWeCom) -> tuple[str, Query, str]:
        query, body = _text(fake)
        return "POST", _without(query, name), body

    return case


def _other_corp(fake: FakeWeCom) -> tuple[str, Query, str]:
    crypto = WeComCrypto(fake.token, fake.encoding_aes_key, "ww-another-corp")
    encrypted, _ = crypto.encrypt(app_xml(fake, MsgType="text", Content="x", MsgId=1), "1", "1")
    return _encrypted(fake, encrypted)


def _inner(plaintext: str) -> Case:
    def case(fake: FakeWeCom) -> tuple[str, Query, str]:
        return "POST", *fake.encrypt_app_xml(plaintext)

    return case


def _get(fake: FakeWeCom, **changes: str) -> tuple[str, Query, str]:
    query, _ = fake.url_verification()
    return "GET", _with(query, **changes), ""


def _get_without_echostr(fake: FakeWeCom) -> tuple[str, Query, str]:
    return "GET", _without(fake.url_verification()[0], "echostr"), ""


def _oversized(fake: FakeWeCom) -> tuple[str, Query, str]:
    return "POST", _text(fake)[0], "<xml>" + "x" * (1 << 20) + "</xml>"


def _outer(body: str) -> Case:
    return lambda fake: ("POST", stamp(fake, "x"), body)


REFUSALS = [
    pytest.param(403, "msg_signature mismatch", _bad_signature, id="bad signature"),
    # 400, not 403: WeCom always signs, so a request without the parameter is malformed (a
    # misconfigured client or a probe), while 403 means "a signature that does not prove WeCom".
    pytest.param(400, "parameter msg_signature", _missing("msg_signature"), id="no signature"),
    pytest.param(400, "parameter timestamp", _missing("timestamp"), id="no timestamp"),
    pytest.param(400, "parameter nonce", _missing("nonce"), id="no nonce"),
    pytest.param(403, "replay window", _old, id="old timestamp"),
    pytest.param(403, "replay window", _future, id="future timestamp"),
    pytest.param(
        400, "not epoch seconds", lambda f: _get(f, timestamp="yesterday"), id="timestamp word"
    ),
    pytest.param(
        403, "msg_signature mismatch", lambda f: _get(f, msg_signature="0" * 40), id="GET bad sig"
    ),
    pytest.param(400, "parameter echostr", _get_without_echostr, id="GET no echostr"),
    pytest.param(400, "receiveid mismatch", _other_corp, id="wrong receiveid"),
    pytest.param(
        400, "not valid base64", lambda f: _encrypted(f, "this is not base64!"), id="bad base64"
    ),
    pytest.param(
        400,
        "bad padding",
        lambda f: _encrypted(f, bad_padding_ciphertext(f, f.corpid)),
        id="bad padding",
    ),
    pytest.param(
        400,
        "missing Encrypt",
        lambda f: ("POST", stamp(f, ""), plain_xml({"ToUserName": "x"})),
        id="no Encrypt",
    ),
    pytest.param(400, "malformed XML", _outer("<xml><Encrypt>x</Enc"), id="outer malformed"),
    pytest.param(400, "DOCTYPE", _outer(BILLION_LAUGHS), id="outer billion laughs"),
    pytest.param(400, "DOCTYPE", _outer(XXE), id="outer external entity"),
    pytest.param(
        400, "malformed XML", _inner("<xml><MsgType>text</MsgType><Content>x"), id="inner malformed"
    ),
    pytest.param(400, "DOCTYPE", _inner(BILLION_LAUGHS), id="inner billion laughs"),
    pytest.param(400, "DOCTYPE", _inner(XXE), id="inner external entity"),
    pytest.param(
        400,
        "without MsgId",
        lambda f: _inner(app_xml(f, MsgType="text", Content="x"))(f),
        id="text without MsgId",
    ),
    pytest.param(
        400,
        "without MediaId",
        lambda f: _inner(app_xml(f, MsgType="image", MsgId=5))(f),
        id="image without MediaId",
    ),
    pytest.param(
        400,
        "without FromUserName",
        _inner("<xml><MsgType>text</MsgType><MsgId>5</MsgId></xml>"),
        id="no FromUserName",
    ),
    pytest.param(413, "over 1 MiB", _oversized, id="over 1 MiB"),
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
    method, query, body = case(wecom)

    async def send() -> tuple[int, bytes]:
        if method == "GET":
            return await bot.get("wecom", query)
        return await bot.post("wecom", query, body)

    await assert_refused(bot, wecom, caplog, status, reason, send)


# --- property: any text survives the whole envelope ----------------------------------------------

# XML 1.0 characters; a lone CR is left out because XML normalises it to LF on the way in.
XML_TEXT = st.text(
    st.characters(
        min_codepoint=0x20, blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff"
    )
    | st.sampled_from("\t\n"),
    max_size=300,
)
_FAKE = FakeWeCom(clock=ManualClock())
_APP = WeComAppWebhook(_FAKE.token, _FAKE.encoding_aes_key, _FAKE.corpid, WINDOW)


@settings(max_examples=200, deadline=None)
@given(text=XML_TEXT, msg_id=st.integers(min_value=1, max_value=2**63 - 1))
def test_any_text_round_trips(text: str, msg_id: int) -> None:
    query, body = _FAKE.signed_app_callback(text, "lisi", msg_id)
    request = HttpRequest("POST", query, CIMultiDict(), body.encode())
    parsed = _APP.handle(request, datetime.fromtimestamp(_FAKE.clock(), SHANGHAI))
    (msg,) = parsed.messages
    assert (msg.text, msg.event_id) == (text.strip(), str(msg_id))
    assert parsed.reply.body == b""
