"""DingTalk Stream mode against the fake's real WebSocket: ACKs, the inbox, reconnects, stop."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from bot.adapters.dingtalk_stream import BOT_TOPIC, OPEN_PATH, StreamClient
from bot.adapters.reconnect import backoff_delay
from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.inbound import Inbox
from bot.messages import Inbound
from tests.fakes import FakeDingTalk, ManualClock
from tests.waiting import until

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
Start = Callable[..., Awaitable[StreamClient]]


@pytest.fixture
async def dingtalk(aiohttp_server: Any) -> FakeDingTalk:
    fake = FakeDingTalk(clock=ManualClock(NOW.timestamp()))
    await fake.start(aiohttp_server)
    return fake


@pytest.fixture
def received() -> list[list[Inbound]]:
    return []


def client_for(
    http: aiohttp.ClientSession, fake: FakeDingTalk, on_messages: Any, **overrides: Any
) -> StreamClient:
    options: dict[str, Any] = {
        "api_base": fake.base_url,
        "client_id": fake.app_key,
        "client_secret": fake.app_secret,
        "on_messages": on_messages,
        "clock": FixedClock(NOW),
        "backoff_base": 0.01,  # no test waits long for a retry
        "backoff_cap": 0.05,
        "rng": random.Random(7),
        **overrides,
    }
    return StreamClient(http, **options)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def start(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, received: list[list[Inbound]]
) -> AsyncIterator[Start]:
    """Runs StreamClients as the app would; each must stop within a second at teardown."""
    running: list[tuple[StreamClient, asyncio.Task[None]]] = []

    async def record(messages: list[Inbound]) -> None:
        received.append(messages)

    async def start_client(*, wait: bool = True, **overrides: Any) -> StreamClient:
        client = client_for(http, dingtalk, overrides.pop("on_messages", record), **overrides)
        running.append((client, asyncio.create_task(client.run())))
        if wait:
            async with asyncio.timeout(2):
                await client.connected.wait()
        return client

    yield start_client
    for client, task in running:
        client.stop()
        async with asyncio.timeout(1):
            await task


def opens(fake: FakeDingTalk) -> list[Any]:
    return [c for c in fake.calls if c.path == OPEN_PATH]


async def test_a_bot_message_is_handed_on_then_acked(
    start: Start, dingtalk: FakeDingTalk, received: list[list[Inbound]]
) -> None:
    await start()
    subscriptions = opens(dingtalk)[0].json["subscriptions"]
    assert subscriptions == [
        {"type": "EVENT", "topic": "*"},
        {"type": "CALLBACK", "topic": BOT_TOPIC},
    ]
    payload = dingtalk.bot_message("打卡 已完成", "staff_a_ll", "cidC1==", "msg-s1")
    ack = await dingtalk.stream_push_bot_message(payload)
    assert ack["code"] == 200 and ack["message"] == "OK"
    assert ack["headers"]["contentType"] == "application/json"
    assert json.loads(ack["data"]) == {"response": None}
    [[msg]] = received  # before the ACK: on_messages is awaited first
    assert (msg.event_id, msg.text, msg.source) == ("msg-s1", "打卡 已完成", "dingtalk_stream")
    assert msg.chat.chat_id == "cidC1==" and msg.reply_route is not None


async def test_ping_is_echoed_and_events_and_unknown_topics_are_acked(
    start: Start, dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    await start()
    await dingtalk.stream_ping("op-1")  # the fake asserts the echo
    with caplog.at_level(logging.INFO):
        ack = await dingtalk.stream_push_event("chat_update_title", {"chatId": "c1"})
    assert ack["code"] == 200
    assert json.loads(ack["data"]) == {"status": "SUCCESS", "message": "OK"}
    assert "chat_update_title" in caplog.text
    unknown = await dingtalk.stream_send("SYSTEM", "something_new", {"x": 1})
    assert unknown is not None and unknown["code"] == 404


async def test_a_redelivered_message_reaches_the_inbox_once(
    db: Database, start: Start, dingtalk: FakeDingTalk
) -> None:
    dispatched: list[Inbound] = []

    async def dispatch(msg: Inbound) -> None:
        dispatched.append(msg)

    inbox = Inbox(db, FixedClock(NOW), dispatch)
    await start(on_messages=inbox.accept)
    payload = dingtalk.bot_message("进度", "staff_a_ll", "cidC1==", "msg-dup")
    first = await dingtalk.stream_push_bot_message(payload)
    second = await dingtalk.stream_push_bot_message(payload)
    assert first["code"] == second["code"] == 200
    assert first["headers"]["messageId"] != second["headers"]["messageId"]  # frame ids
    await inbox.drain()
    assert [m.event_id for m in dispatched] == ["msg-dup"]


async def test_disconnect_reconnects_with_a_fresh_ticket(
    start: Start, dingtalk: FakeDingTalk, received: list[list[Inbound]]
) -> None:
    client = await start()
    await dingtalk.stream_disconnect("fake: upgrading")
    await until(lambda: len(opens(dingtalk)) == 2 and dingtalk.stream_connections == 1)
    async with asyncio.timeout(2):
        await client.connected.wait()
    tickets = [c.query["ticket"] for c in dingtalk.calls if c.path == "/connect"]
    assert len(tickets) == 2 and tickets[0] != tickets[1]
    ack = await dingtalk.stream_push_bot_message(
        dingtalk.bot_message("打卡", "staff_a_ll", "cidC1==", "msg-after")
    )
    assert ack["code"] == 200 and received[-1][0].event_id == "msg-after"


async def test_the_server_closing_the_socket_is_followed_by_a_reconnect(
    start: Start, dingtalk: FakeDingTalk
) -> None:
    await start()
    for conn in list(dingtalk._connections):  # no SYSTEM disconnect first: a dropped link
        await conn.ws.close()
    await until(lambda: len(opens(dingtalk)) == 2 and dingtalk.stream_connections == 1)
    await dingtalk.stream_ping()


@pytest.mark.parametrize(
    "data",
    [{"msgtype": "text", "msgId": "m-broken"}, ["not", "an", "object"], "not json at all"],
    ids=["missing fields", "array", "string"],
)
async def test_a_broken_bot_message_is_acked_and_logged(
    start: Start,
    dingtalk: FakeDingTalk,
    received: list[list[Inbound]],
    caplog: pytest.LogCaptureFixture,
    data: Any,
) -> None:
    await start()
    caplog.clear()
    ack = await dingtalk.stream_send("CALLBACK", BOT_TOPIC, data)
    assert ack is not None and ack["code"] == 200  # no redelivery of the same bytes
    assert received == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ignored" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    await dingtalk.stream_ping()  # the connection carries on


async def test_an_unknown_message_type_is_acked_and_not_delivered(
    start: Start, dingtalk: FakeDingTalk, received: list[list[Inbound]]
) -> None:
    await start()
    payload = dingtalk.bot_message("x", "staff_a_ll", "cidC1==", "msg-audio")
    payload["msgtype"] = "audio"
    assert (await dingtalk.stream_push_bot_message(payload))["code"] == 200
    assert received == []


async def test_gateway_errors_are_retried_with_backoff(
    start: Start, dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    dingtalk.fail_next(3, 500, path=OPEN_PATH)
    with caplog.at_level(logging.INFO):
        await start()
    assert [c.status for c in opens(dingtalk)] == [500, 500, 500, 200]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3 and all("HTTP 500" in r.getMessage() for r in warnings)
    assert "Traceback" not in caplog.text and dingtalk.app_secret not in caplog.text
    ticket = next(c.query["ticket"] for c in dingtalk.calls if c.path == "/connect")
    assert ticket not in caplog.text
    assert "dingtalk stream connected" in caplog.text


async def test_refused_credentials_are_logged_without_the_secret(
    start: Start, dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start(client_secret="not-the-secret-42", wait=False)
    await until(lambda: len(opens(dingtalk)) >= 2)
    assert not client.connected.is_set()
    assert "HTTP 401" in caplog.text and "not-the-secret-42" not in caplog.text
    assert "not-the-secret-42" not in repr(client)


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    rng = random.Random(3)
    for failures in range(12):
        floor = min(60.0, 2.0**failures)
        assert floor <= backoff_delay(failures, 1.0, 60.0, rng) <= floor + 1.0
    assert 60.0 <= backoff_delay(10_000, 1.0, 60.0, rng) <= 61.0


async def run_then_stop(client: StreamClient, ready: Callable[[], Awaitable[object]]) -> None:
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(2):
            await ready()
    finally:
        client.stop()
        async with asyncio.timeout(0.5):  # promptly, whatever it was waiting for
            await task


async def test_stop_ends_run_promptly_while_connected(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    client = client_for(http, dingtalk, lambda msgs: asyncio.sleep(0))
    await run_then_stop(client, client.connected.wait)
    async with asyncio.timeout(1):
        await dingtalk.stream_wait_closed()
    assert not client.connected.is_set() and dingtalk.stream_connections == 0


async def test_stop_ends_run_promptly_while_backing_off(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, caplog: pytest.LogCaptureFixture
) -> None:
    dingtalk.fail_next(1, 503, path=OPEN_PATH)
    client = client_for(
        http, dingtalk, lambda msgs: asyncio.sleep(0), backoff_base=30.0, backoff_cap=60.0
    )
    with caplog.at_level(logging.INFO):
        await run_then_stop(client, lambda: until(lambda: "reconnecting in" in caplog.text))
    assert [c.status for c in opens(dingtalk)] == [503]


async def test_stop_ends_run_promptly_while_the_gateway_hangs(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    dingtalk.delay_next(1, 1.5, path=OPEN_PATH)
    client = client_for(http, dingtalk, lambda msgs: asyncio.sleep(0))
    await run_then_stop(client, lambda: until(lambda: len(opens(dingtalk)) == 1))
    assert dingtalk.stream_connections == 0
