"""DingTalk robot messages in: the shared parser, and the HTTP callback route end to end."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.adapters.dingtalk_inbound import DingTalkPayloadError, parse_bot_message
from bot.app import DEPS, create_app
from bot.clock import SHANGHAI, FixedClock
from bot.deployment import load
from bot.messages import ChatRef, Inbound, Media
from bot.models import InboundSeen
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, ManualClock

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
BOT = "$:LWCP_v1:$bot"


def payload(**fields: Any) -> dict[str, Any]:
    """A group text message as DingTalk sends it (PLATFORMS.md §4); `fields` override."""
    message: dict[str, Any] = {
        "msgtype": "text",
        "text": {"content": " 打卡 已完成"},
        "msgId": "msgA1",
        "createAt": 1_793_581_100_000,
        "conversationType": "2",
        "conversationId": "cidG1==",
        "conversationTitle": "第一共同体群",
        "senderId": "$:LWCP_v1:$enc",
        "senderNick": "甲联络员",
        "senderStaffId": "staff_a_ll",
        "chatbotUserId": BOT,
        "isInAtList": True,
        "atUsers": [{"dingtalkId": BOT}],
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
        "sessionWebhookExpiredTime": 1_793_586_600_000,
    }
    message.update(fields)
    return {k: v for k, v in message.items() if v is not None}


def parse(message: dict[str, Any], **kw: Any) -> Inbound:
    parsed = parse_bot_message(message, NOW, **kw)
    assert parsed is not None
    return parsed


# --- the parser --------------------------------------------------------------------------


def test_group_text_message() -> None:
    msg = parse(payload())
    assert msg.platform == "dingtalk" and msg.event_id == "msgA1"
    assert msg.chat == ChatRef("dingtalk", "cidG1==", is_group=True, title="第一共同体群")
    assert (msg.sender_id, msg.sender_name) == ("staff_a_ll", "甲联络员")
    assert msg.text == "打卡 已完成"  # DingTalk's leading space is gone
    assert msg.received_at == NOW and msg.source == "dingtalk_http"
    assert msg.media == () and msg.mentions == ()


def test_single_chat_uses_the_sender_as_chat() -> None:
    msg = parse(payload(conversationType="1", conversationId="cidX", conversationTitle=None))
    assert msg.chat == ChatRef("dingtalk", "staff_a_ll", is_group=False)


def test_sender_falls_back_to_sender_id() -> None:
    msg = parse(payload(senderStaffId=None, senderNick=None, conversationType="1"))
    assert msg.sender_id == "$:LWCP_v1:$enc" and msg.chat.chat_id == "$:LWCP_v1:$enc"
    assert msg.sender_name == ""


def test_picture_message() -> None:
    msg = parse(
        payload(
            msgtype="picture",
            text=None,
            content={"downloadCode": "dl-1", "pictureDownloadCode": "pdl-1"},
        )
    )
    assert msg.text == "" and msg.media == (Media("image", "dl-1"),)


def test_rich_text_joins_text_and_keeps_pictures() -> None:
    content = {
        "richText": [
            {"text": "@督办助手"},
            {"text": "打卡 主题党日"},
            {"text": "\n"},
            {"type": "picture", "downloadCode": "dl-1", "pictureDownloadCode": "p1"},
            {"text": "\n"},
            {"type": "picture", "pictureDownloadCode": "p2"},
        ]
    }
    msg = parse(payload(msgtype="richText", text=None, content=content))
    assert msg.text == "打卡 主题党日"  # the robot was the only one @-mentioned
    assert msg.media == (Media("image", "dl-1"), Media("image", "p2"))


def test_rich_text_keeps_other_peoples_mentions_unless_the_robot_is_named() -> None:
    content = {"richText": [{"text": "@督办助手"}, {"text": "催办"}, {"text": "@张三"}]}
    at_users = [{"dingtalkId": BOT}, {"dingtalkId": "$:zs", "staffId": "staff_zs"}]
    message = payload(msgtype="richText", text=None, content=content, atUsers=at_users)
    assert parse(message).text == "@督办助手催办@张三"  # cannot tell which one is the robot
    named = parse(message, robot_names=["督办助手"])
    assert named.text == "催办@张三" and named.mentions == ("staff_zs",)


def test_the_robots_name_is_stripped_from_text() -> None:
    message = payload(text={"content": "@督办助手 进度 @督办助手团队"})
    assert parse(message, robot_names=["@督办助手"]).text == "进度 @督办助手团队"
    assert parse(message).text == "@督办助手 进度 @督办助手团队"


def test_mentions_besides_the_robot() -> None:
    at_users = [
        {"dingtalkId": BOT},
        {"dingtalkId": "$:a", "staffId": "staff_a"},
        {"dingtalkId": "$:b"},  # an external contact: no staffId
        {"dingtalkId": "$:a", "staffId": "staff_a"},
    ]
    assert parse(payload(atUsers=at_users)).mentions == ("staff_a", "$:b")


def test_session_webhook_becomes_an_expiring_reply_route() -> None:
    route = parse(payload()).reply_route
    assert route is not None and route.kind == "dingtalk_session"
    assert route.url.endswith("session=s1")
    assert route.expires_at == NOW + timedelta(minutes=90)
    assert route.expires_at.tzinfo is not None
    as_text = parse(payload(sessionWebhookExpiredTime="1793586600000")).reply_route
    assert as_text is not None and as_text.expires_at == route.expires_at
    assert parse(payload(sessionWebhook=None)).reply_route is None


@pytest.mark.parametrize("msgtype", ["audio", "interactiveCard", "Text"])
def test_unknown_message_types_are_ignored(msgtype: str) -> None:
    assert parse_bot_message(payload(msgtype=msgtype), NOW) is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"msgtype": None}, "msgtype missing"),
        ({"msgtype": 3}, "msgtype not a string"),
        ({"msgtype": ""}, "msgtype empty"),
        ({"msgId": None}, "msgId missing"),
        ({"msgId": ""}, "msgId empty"),
        ({"senderStaffId": None, "senderId": None}, "senderId missing"),
        ({"senderStaffId": 42}, "senderStaffId not a string"),
        ({"conversationType": 2}, "conversationType"),
        ({"conversationId": None}, "conversationId missing"),
        ({"text": "hi"}, "text not an object"),
        ({"text": {"content": None}}, "text.content missing"),
        ({"atUsers": {"dingtalkId": BOT}}, "atUsers not a list"),
        ({"atUsers": ["x"]}, "atUsers item not an object"),
        ({"sessionWebhookExpiredTime": True}, "sessionWebhookExpiredTime not a number"),
        ({"sessionWebhookExpiredTime": 10**30}, "sessionWebhookExpiredTime out of range"),
        ({"msgtype": "picture", "content": {}}, "content.pictureDownloadCode missing"),
        ({"msgtype": "richText", "content": {"richText": "x"}}, "content.richText not a list"),
        ({"msgtype": "richText", "content": {"richText": [{"text": 1}]}}, "richText.text"),
    ],
)
def test_malformed_payloads_name_the_field(fields: dict[str, Any], problem: str) -> None:
    message = payload(**fields)
    message.update({k: None for k, v in fields.items() if v is None})  # explicit nulls too
    for candidate in (payload(**fields), message):
        with pytest.raises(DingTalkPayloadError, match=problem) as raised:
            parse_bot_message(candidate, NOW)
        assert "甲联络员" not in str(raised.value)  # never the payload's content


@given(st.text())
def test_any_text_round_trips(text: str) -> None:
    msg = parse_bot_message(payload(text={"content": " " + text}), NOW)
    assert msg is not None and msg.text == text.strip()


# --- the route, over real HTTP -----------------------------------------------------------

AppFactory = Callable[[], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def dingtalk(aiohttp_server: Any) -> FakeDingTalk:
    fake = FakeDingTalk(clock=ManualClock(NOW.timestamp()))
    await fake.start(aiohttp_server)
    return fake


@pytest.fixture
def dispatched() -> list[Inbound]:
    return []


@pytest.fixture
def start_app(
    aiohttp_client: Any,
    database_url: str,
    tmp_path: Path,
    dingtalk: FakeDingTalk,
    dispatched: list[Inbound],
) -> AppFactory:
    """Starts the bot (again, for a restart) on the same database."""
    config = write(tmp_path / "conf", mini())
    settings = Settings(
        database_url=database_url,
        config=config,
        scheduler_enabled=False,
        dingtalk_app_key=dingtalk.app_key,
        dingtalk_app_secret=dingtalk.app_secret,
    )

    async def record(msg: Inbound) -> None:
        dispatched.append(msg)

    async def start() -> TestClient[Any, Any]:
        app = create_app(
            settings, clock=FixedClock(NOW), deployment=load(config, env=ENV), dispatch=record
        )
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    return start


async def seen_count(client: TestClient[Any, Any]) -> int:
    async with client.app[DEPS].db.begin() as session:
        return int((await session.execute(select(func.count()).select_from(InboundSeen))).scalar())


async def test_a_callback_is_dispatched_once_even_across_restarts(
    start_app: AppFactory, dingtalk: FakeDingTalk, dispatched: list[Inbound]
) -> None:
    client = await start_app()
    headers, body = dingtalk.signed_callback("打卡 已完成", "staff_a_ll", "cidC1==", "msg-1")
    for _ in range(2):  # DingTalk retrying
        resp = await client.post("/hooks/dingtalk", json=body, headers=headers)
        assert resp.status == 200
    await client.app[DEPS].inbox.drain()
    assert [(m.event_id, m.text, m.chat.chat_id) for m in dispatched] == [
        ("msg-1", "打卡 已完成", "cidC1==")
    ]
    assert dispatched[0].reply_route is not None
    await client.close()

    client = await start_app()  # a restart, same database
    resp = await client.post("/hooks/dingtalk", json=body, headers=dingtalk.callback_headers())
    assert resp.status == 200
    await client.app[DEPS].inbox.drain()
    assert len(dispatched) == 1 and await seen_count(client) == 1


async def test_an_unknown_message_type_is_answered_and_ignored(
    start_app: AppFactory,
    dingtalk: FakeDingTalk,
    dispatched: list[Inbound],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await start_app()
    headers, body = dingtalk.signed_callback("x", "staff_a_ll", "cidC1==", "msg-2")
    body["msgtype"] = "audio"
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resp = await client.post("/hooks/dingtalk", json=body, headers=headers)
    assert resp.status == 200
    await client.app[DEPS].inbox.drain()
    assert dispatched == [] and await seen_count(client) == 0
    assert "'audio' ignored" in caplog.text


def _refusals() -> list[tuple[str, Callable[[FakeDingTalk], dict[str, Any]], int]]:
    def signed(fake: FakeDingTalk, **headers: str) -> dict[str, Any]:
        _, body = fake.signed_callback("打卡", "staff_a_ll", "cidC1==", "msg-bad")
        return {"headers": {**fake.callback_headers(), **headers}, "json": body}

    def raw(data: bytes) -> Callable[[FakeDingTalk], dict[str, Any]]:
        return lambda fake: {"headers": fake.callback_headers(), "data": data}

    two_hours_ago = int((NOW - timedelta(hours=2)).timestamp() * 1000)
    return [
        ("bad sign", lambda f: signed(f, sign="AAAA" + f.callback_headers()["sign"][4:]), 403),
        ("missing headers", lambda f: {**signed(f), "headers": {}}, 403),
        ("2 h old", lambda f: signed(f, **f.callback_headers(two_hours_ago)), 403),
        ("not JSON", raw(b'{"msgtype": "text",'), 400),
        ("not UTF-8", raw(b"\xff\xfe\x00{"), 400),
        ("deeply nested", raw(b"[" * 100_000), 400),
        ("JSON array", raw(b'[{"msgtype": "text"}]'), 400),
        ("missing fields", raw(json.dumps({"msgtype": "text", "msgId": "m"}).encode()), 400),
        ("over 1 MiB", raw(b" " * (1024 * 1024 + 1)), 413),
        ("GET", lambda f: {"method": "GET", "headers": f.callback_headers()}, 405),
    ]


@pytest.mark.parametrize(
    ("case", "request_of", "status"), _refusals(), ids=[r[0] for r in _refusals()]
)
async def test_refused_callbacks(
    start_app: AppFactory,
    dingtalk: FakeDingTalk,
    dispatched: list[Inbound],
    caplog: pytest.LogCaptureFixture,
    case: str,
    request_of: Callable[[FakeDingTalk], dict[str, Any]],
    status: int,
) -> None:
    client = await start_app()
    kwargs = request_of(dingtalk)
    method = kwargs.pop("method", "POST")
    caplog.clear()
    resp = await client.request(method, "/hooks/dingtalk", **kwargs)
    assert resp.status == status, case
    await client.app[DEPS].inbox.drain()
    assert dispatched == [] and await seen_count(client) == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is None and "Traceback" not in caplog.text
    assert dingtalk.app_secret not in caplog.text
    assert kwargs.get("headers", {}).get("sign", "-") not in caplog.text
