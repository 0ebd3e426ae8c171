"""WeCom 智能机器人 long connection against the fake's real WebSocket: subscription, messages
read exactly as HTTP mode reads them, the welcome reply, heartbeats, reconnects, being replaced,
proactive posts through WeComBotSender, acks and their failures, stop()."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from bot.adapters.base import DeliveryError, Destination, HttpRequest
from bot.adapters.split import split_message
from bot.adapters.wecom_aibot_ws import AibotConnection, WsBotTransport
from bot.adapters.wecom_bot_inbound import WELCOME, WeComBotWebhook
from bot.adapters.wecom_send import WeComBotSender
from bot.app import DEPS
from bot.clock import FixedClock
from bot.messages import Inbound, Outbound
from tests.fakes import FakeWeCom
from tests.fakes.wecom_aibot_ws import SUBSCRIBE_REFUSED, FakeAibotWs
from tests.test_split import chinese_report
from tests.test_wecom_inbound import WINDOW, bot_starter
from tests.waiting import until

SECRET = "aibot-ws-secret-Hk4Rt8Wq"
GROUP = "wrkGROUP1"
MARKDOWN = {"msgtype": "markdown", "markdown": {"content": "**本周调度**：请按时填报。"}}


@dataclass
class Running:
    conn: AibotConnection
    task: asyncio.Task[None]


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def aibot(aiohttp_server: Any, clock: FixedClock) -> FakeAibotWs:
    wecom = FakeWeCom(aibot_secret=SECRET, clock=lambda: clock.now().timestamp())
    fake = FakeAibotWs(wecom)  # before start: the route joins wecom.app
    await wecom.start(aiohttp_server)
    return fake


@pytest.fixture
def wecom(aibot: FakeAibotWs) -> FakeWeCom:
    return aibot.wecom


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def inbound() -> asyncio.Queue[list[Inbound]]:
    return asyncio.Queue()


@pytest.fixture
async def start(
    http: aiohttp.ClientSession,
    aibot: FakeAibotWs,
    clock: FixedClock,
    inbound: asyncio.Queue[list[Inbound]],
) -> AsyncIterator[Start]:
    """Runs connections as the app would; each must stop within a second at teardown."""
    running: list[Running] = []

    async def start_connection(*, wait: bool = True, **overrides: Any) -> Running:
        options: dict[str, Any] = {
            "url": aibot.url,
            "bot_id": aibot.wecom.aibot_id,
            "secret": SECRET,
            "on_messages": inbound.put,
            "clock": clock,
            "backoff_base": 0.01,  # no test waits long for a retry
            "backoff_cap": 0.05,
            "rng": random.Random(7),
            **overrides,
        }
        conn = AibotConnection(http, **options)
        started = Running(conn, asyncio.create_task(conn.run()))
        running.append(started)
        if wait:
            async with asyncio.timeout(2):
                await conn.connected.wait()
        return started

    yield start_connection
    for started in running:
        started.conn.stop()
        async with asyncio.timeout(1):
            await started.task


async def seen_by(fake: FakeAibotWs, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        await fake.wait_for(condition)


async def next_messages(inbound: asyncio.Queue[list[Inbound]]) -> list[Inbound]:
    async with asyncio.timeout(2):
        return await inbound.get()


def http_mode(wecom: FakeWeCom, query: dict[str, str], body: Any, clock: FixedClock) -> Any:
    """What the HTTP callback adapter makes of the same callback."""
    adapter = WeComBotWebhook(wecom.token, wecom.encoding_aes_key, WINDOW)
    request = HttpRequest("POST", query, CIMultiDict(), json.dumps(body).encode())
    return adapter.handle(request, clock.now()).messages


# --- subscription -------------------------------------------------------------------------------


async def test_subscribes_with_the_bot_credentials(start: Start, aibot: FakeAibotWs) -> None:
    running = await start()
    [frame] = aibot.frames_of("aibot_subscribe")
    assert frame["body"] == {"bot_id": aibot.wecom.aibot_id, "secret": SECRET}
    assert frame["headers"]["req_id"].startswith("aibot_subscribe_")
    assert len(aibot.connections) == 1 and aibot.subscriptions == 1
    assert SECRET not in repr(running.conn) and SECRET not in repr(WsBotTransport(running.conn))


async def test_a_wrong_secret_is_retried_and_never_logged(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    running = await start(secret="not-the-secret-42", wait=False)
    await seen_by(aibot, lambda: len(aibot.frames_of("aibot_subscribe")) >= 3)
    assert not running.conn.connected.is_set() and aibot.subscriptions == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) >= 2
    assert all(f"subscription refused: errcode {SUBSCRIBE_REFUSED}" in w for w in warnings)
    assert "reconnecting in" in caplog.text and "Traceback" not in caplog.text
    assert "not-the-secret-42" not in caplog.text and SECRET not in caplog.text


async def test_a_refused_handshake_is_retried(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    aibot.wecom.fail_next(2, 503, path=aibot.path)
    await start()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["wecom aibot: handshake refused: HTTP 503"] * 2
    assert aibot.subscriptions == 1


# --- messages and events -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "chatid", "msgtype"),
    [
        ("@督办助手 打卡 T01 已完成", GROUP, "text"),
        ("帮助", None, "text"),
        ("@督办助手 打卡 T01", GROUP, "mixed"),
    ],
    ids=["group", "single", "mixed"],
)
async def test_a_message_arrives_as_http_mode_reads_it(
    start: Start,
    aibot: FakeAibotWs,
    clock: FixedClock,
    inbound: asyncio.Queue[list[Inbound]],
    text: str,
    chatid: str | None,
    msgtype: str,
) -> None:
    await start()
    wecom = aibot.wecom
    query, body = wecom.signed_aibot_callback(text, "lisi", chatid, "m-1", msgtype=msgtype)
    await aibot.push_message(aibot.plain(body))
    messages = await next_messages(inbound)
    assert tuple(messages) == http_mode(wecom, query, body, clock)
    assert messages[0].source == "wecom_aibot"  # so replies take the same channels


@pytest.mark.parametrize("first", ["ws", "http"])
async def test_one_msgid_by_both_transports_is_dispatched_once(
    aiohttp_client: Any,
    database_url: str,
    tmp_path: Path,
    clock: FixedClock,
    aibot: FakeAibotWs,
    start: Start,
    first: str,
) -> None:
    bot = await bot_starter(aiohttp_client, database_url, tmp_path, clock, aibot.wecom)()
    inbox = bot.client.app[DEPS].inbox
    accepted: asyncio.Queue[list[Inbound]] = asyncio.Queue()

    async def accept(messages: list[Inbound]) -> None:
        await accepted.put(await inbox.accept(messages))

    await start(on_messages=accept)
    query, body = aibot.wecom.signed_aibot_callback("@督办助手 打卡", "lisi", GROUP, "m-both")
    if first == "http":
        assert await bot.post("wecom-bot", query, body) == (200, b"")
    await aibot.push_message(aibot.plain(body))
    fresh = await next_messages(accepted)
    if first == "ws":
        assert [m.event_id for m in fresh] == ["m-both"]
        assert await bot.post("wecom-bot", query, body) == (200, b"")
    else:
        assert fresh == []
    await inbox.drain()
    assert [m.event_id for m in bot.dispatched] == ["m-both"]
    assert await bot.seen() == 1


async def test_enter_chat_is_welcomed_on_the_events_req_id(
    start: Start, aibot: FakeAibotWs, inbound: asyncio.Queue[list[Inbound]]
) -> None:
    await start()
    req_id = await aibot.push_event("enter_chat", sender="wangwu")
    await seen_by(aibot, lambda: ("out", "ack", req_id) in aibot.timeline)
    [frame] = aibot.frames_of("aibot_respond_welcome_msg")
    assert frame["headers"]["req_id"] == req_id
    assert frame["body"] == {"msgtype": "text", "text": {"content": WELCOME}}
    [shown] = aibot.wecom.sent
    assert (shown.endpoint, shown.target, shown.text) == (
        "aibot_respond_welcome_msg",
        "wangwu",
        WELCOME,
    )
    assert inbound.empty()


async def test_other_events_and_odd_frames_are_logged_and_skipped(
    start: Start,
    aibot: FakeAibotWs,
    inbound: asyncio.Queue[list[Inbound]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await start()
    ws = aibot.connections[-1].ws
    for eventtype in ("template_card_event", "feedback_event", "unheard_of"):
        await aibot.push_event(eventtype, chatid=GROUP)
    await ws.send_str("not json")
    await ws.send_json({"cmd": "aibot_msg_callback", "headers": {"req_id": "r-1"}, "body": [1]})
    await ws.send_json({"cmd": "something_new", "headers": {"req_id": "r-2"}, "body": {}})
    broken = {"msgtype": "text", "chattype": "group", "text": {"content": "x"}}  # no msgid
    await aibot.push_message(broken)
    await aibot.push_message({"msgid": "m-h", "msgtype": "hologram", "from": {"userid": "l"}})
    _, body = aibot.wecom.signed_aibot_callback("进度", "lisi", GROUP, "m-after")
    await aibot.push_message(aibot.plain(body))
    [message] = await next_messages(inbound)  # the connection carried on
    assert message.event_id == "m-after" and inbound.empty()
    assert [f.get("cmd") for f in aibot.frames] == ["aibot_subscribe"]  # nothing answered
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0] == "wecom aibot: unreadable frame ignored"
    assert warnings[1] == "wecom aibot: aibot_msg_callback frame without a body ignored"
    assert warnings[2].endswith("ignored: text message without msgid or from.userid")
    assert "event unheard_of from lisi" in caplog.text
    assert "type hologram from l ignored" in caplog.text
    assert "something_new frame not handled" in caplog.text


async def test_a_failing_inbox_is_logged_and_the_connection_carries_on(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    calls: asyncio.Queue[str] = asyncio.Queue()

    async def broken(messages: list[Inbound]) -> None:
        await calls.put(messages[0].event_id)
        raise RuntimeError("database down")

    await start(on_messages=broken)
    for msgid in ("m-a", "m-b"):
        _, body = aibot.wecom.signed_aibot_callback("打卡", "lisi", GROUP, msgid)
        await aibot.push_message(aibot.plain(body))
    async with asyncio.timeout(2):
        assert [await calls.get(), await calls.get()] == ["m-a", "m-b"]
    assert caplog.text.count("could not be accepted") == 2  # logged before the next await
    assert aibot.subscriptions == 1


# --- liveness: heartbeats, drops, being replaced ----------------------------------------------


async def test_answered_pings_keep_the_connection(start: Start, aibot: FakeAibotWs) -> None:
    await start(heartbeat=0.01)
    await seen_by(aibot, lambda: len(aibot.frames_of("ping")) >= 5)
    assert aibot.subscriptions == 1
    assert all(f["headers"]["req_id"].startswith("ping_") for f in aibot.frames_of("ping"))


async def test_two_unanswered_pings_make_it_reconnect(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    aibot.ack_pings = False
    running = await start(heartbeat=0.02)
    async with asyncio.timeout(2):
        await aibot.wait_subscriptions(2)
    aibot.ack_pings = True
    frames = [f.get("cmd") for f in aibot.frames]
    assert frames[:4] == ["aibot_subscribe", "ping", "ping", "aibot_subscribe"]
    assert "2 pings unanswered; reconnecting" in caplog.text
    async with asyncio.timeout(2):
        await running.conn.connected.wait()


async def test_a_dropped_connection_reconnects(
    start: Start, aibot: FakeAibotWs, inbound: asyncio.Queue[list[Inbound]]
) -> None:
    running = await start()
    await aibot.drop()
    async with asyncio.timeout(2):
        await aibot.wait_subscriptions(2)
        await running.conn.connected.wait()
    _, body = aibot.wecom.signed_aibot_callback("打卡", "lisi", GROUP, "m-after")
    await aibot.push_message(aibot.plain(body))
    assert [m.event_id for m in await next_messages(inbound)] == ["m-after"]


async def test_disconnected_event_ends_run_without_reconnecting(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start()
    await aibot.disconnect_replaced()
    async with asyncio.timeout(2):
        await running.task
    assert running.conn.replaced and not running.conn.connected.is_set()
    assert aibot.subscriptions == 1 and aibot.connections == []
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "replaced by a newer connection; not reconnecting" in warning.getMessage()


async def test_disconnected_event_counts_without_an_event_msgtype(
    start: Start, aibot: FakeAibotWs
) -> None:
    running = await start()
    body = {"aibotid": aibot.wecom.aibot_id, "event": {"eventtype": "disconnected_event"}}
    frame = {"cmd": "aibot_event_callback", "headers": {"req_id": "r-d"}, "body": body}
    await aibot.connections[-1].ws.send_json(frame)
    async with asyncio.timeout(2):
        await running.task
    assert aibot.subscriptions == 1


async def test_a_second_instance_takes_over_from_the_first(
    start: Start, aibot: FakeAibotWs
) -> None:
    older = await start()
    newer = await start()
    async with asyncio.timeout(2):
        await older.task
    assert newer.conn.connected.is_set() and not newer.task.done()
    assert aibot.subscriptions == 2 and len(aibot.connections) == 1


# --- sending ------------------------------------------------------------------------------------


async def test_the_sender_posts_markdown_over_the_connection(
    start: Start, aibot: FakeAibotWs, http: aiohttp.ClientSession, clock: FixedClock
) -> None:
    running = await start()
    sender = WeComBotSender(http, transport=WsBotTransport(running.conn), clock=clock)
    await sender.send(Destination("wecom", GROUP, "wecom_aibot"), Outbound("**本周调度**"))
    [frame] = aibot.frames_of("aibot_send_msg")
    assert frame["headers"]["req_id"].startswith("aibot_send_msg_")
    assert frame["body"] == {
        "chatid": GROUP,
        "msgtype": "markdown",
        "markdown": {"content": "**本周调度**"},
    }
    assert aibot.wecom.texts(GROUP) == ["**本周调度**"]


async def test_a_long_message_goes_in_parts_each_after_the_last_ack(
    start: Start, aibot: FakeAibotWs, http: aiohttp.ClientSession, clock: FixedClock
) -> None:
    running = await start()
    transport = WsBotTransport(running.conn)
    sender = WeComBotSender(http, transport=transport, clock=clock, markdown_limit=4096)
    report = chinese_report(60)
    await sender.send(Destination("wecom", GROUP, "wecom_aibot"), Outbound(report))
    parts = split_message(report, 4096, numbered=True)
    assert len(parts) >= 3 and aibot.wecom.texts(GROUP) == parts
    sends = [(d, kind) for d, kind, _ in aibot.timeline if kind in ("aibot_send_msg", "ack")]
    assert sends[1:] == [("in", "aibot_send_msg"), ("out", "ack")] * len(parts)


async def test_commands_sharing_a_req_id_wait_for_each_others_ack(
    start: Start, aibot: FakeAibotWs
) -> None:
    running = await start()
    req_id = await aibot.push_message({"msgid": "m-s", "msgtype": "hologram", "from": {}})
    aibot.ack_delay_next(0.1)

    def stream(content: str, finish: bool) -> dict[str, Any]:
        return {"msgtype": "stream", "stream": {"id": "s1", "finish": finish, "content": content}}

    await asyncio.gather(
        running.conn.send("aibot_respond_msg", stream("处理中", False), req_id=req_id),
        running.conn.send("aibot_respond_msg", stream("已完成", True), req_id=req_id),
    )
    assert [e for e in aibot.timeline if e[2] == req_id] == [
        ("in", "aibot_respond_msg", req_id),
        ("out", "ack", req_id),
    ] * 2


@pytest.mark.parametrize(
    ("fault", "retryable", "code"),
    [
        (lambda fake: fake.ack_withhold_next(), True, "timeout"),
        (lambda fake: fake.ack_delay_next(0.5), True, "timeout"),
        (lambda fake: fake.ack_fail_next(45009), True, "45009"),
        (lambda fake: fake.ack_fail_next(-1), True, "-1"),
        (lambda fake: fake.ack_fail_next(40008), False, "40008"),
    ],
    ids=["no ack", "late ack", "rate limited", "busy", "refused"],
)
async def test_send_failures_say_whether_to_retry(
    start: Start,
    aibot: FakeAibotWs,
    fault: Callable[[FakeAibotWs], None],
    retryable: bool,
    code: str,
) -> None:
    running = await start(ack_timeout=0.1)
    fault(aibot)
    with pytest.raises(DeliveryError) as err:
        await WsBotTransport(running.conn).send_msg(GROUP, MARKDOWN)
    assert (err.value.retryable, err.value.code) == (retryable, code)
    await WsBotTransport(running.conn).send_msg(GROUP, MARKDOWN)  # the next one goes through


async def test_the_twenty_first_post_in_a_minute_is_rate_limited(
    start: Start, aibot: FakeAibotWs
) -> None:
    transport = WsBotTransport((await start()).conn)
    for _ in range(20):
        await transport.send_msg(GROUP, MARKDOWN)
    with pytest.raises(DeliveryError) as err:
        await transport.send_msg(GROUP, MARKDOWN)
    assert (err.value.retryable, err.value.code) == (True, "45009")
    await transport.send_msg("wrkOTHER", MARKDOWN)  # the limit is per chat
    assert len(aibot.wecom.texts(GROUP)) == 20


async def test_a_connection_lost_while_waiting_for_the_ack_is_retryable(
    start: Start, aibot: FakeAibotWs
) -> None:
    running = await start(ack_timeout=2.0)
    aibot.ack_withhold_next()
    sending = asyncio.create_task(WsBotTransport(running.conn).send_msg(GROUP, MARKDOWN))
    await seen_by(aibot, lambda: bool(aibot.frames_of("aibot_send_msg")))
    await aibot.drop()
    with pytest.raises(DeliveryError) as err:
        async with asyncio.timeout(1):
            await sending
    assert (err.value.retryable, err.value.code) == (True, "disconnected")


async def test_sending_without_a_connection_is_retryable(
    http: aiohttp.ClientSession, clock: FixedClock, inbound: asyncio.Queue[list[Inbound]]
) -> None:
    conn = AibotConnection(
        http, bot_id="b", secret="s", on_messages=inbound.put, clock=clock, ack_timeout=0.05
    )
    with pytest.raises(DeliveryError) as err:
        await WsBotTransport(conn).send_msg(GROUP, MARKDOWN)
    assert (err.value.retryable, err.value.code) == (True, "disconnected")


# --- stop() -------------------------------------------------------------------------------------


async def stopped_promptly(running: Running) -> None:
    running.conn.stop()
    async with asyncio.timeout(0.5):  # promptly, whatever it was waiting for
        await running.task
    assert not running.conn.connected.is_set()


async def test_stop_while_connected(start: Start, aibot: FakeAibotWs) -> None:
    running = await start()
    await stopped_promptly(running)
    assert not running.conn.replaced
    async with asyncio.timeout(1):
        await aibot.wait_closed()


async def test_stop_while_backing_off(
    start: Start, aibot: FakeAibotWs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    running = await start(secret="wrong", backoff_base=30.0, backoff_cap=60.0, wait=False)
    await until(lambda: "reconnecting in" in caplog.text)
    await stopped_promptly(running)
    assert len(aibot.frames_of("aibot_subscribe")) == 1


async def test_stop_while_the_handshake_hangs(start: Start, aibot: FakeAibotWs) -> None:
    aibot.wecom.delay_next(1, 1.5, path=aibot.path)
    running = await start(wait=False)
    await until(lambda: any(c.path == aibot.path for c in aibot.wecom.calls))
    await stopped_promptly(running)
    assert aibot.frames == []
