"""WeCom 智能机器人 long connection (PLATFORMS.md §3): group messages in and proactive posts out
over one outbound WebSocket, so an agency on an intranet needs no public callback URL.

One `AibotConnection.run()` task per process: connect, subscribe with the bot's id and secret,
hand messages to the inbox, ping every `heartbeat` seconds, and reconnect with a capped,
jittered backoff whenever the link ends. A ``disconnected_event`` means a newer connection for
the same bot took over (another instance, or a restart elsewhere): this one stops for good, as
reconnecting would only take the bot back and forth between them.

Commands the bot sends (``aibot_send_msg``, the welcome reply) are acknowledged by a frame with
the same ``req_id``; `send()` waits for it, one command per ``req_id`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any, Literal, TypeVar

import aiohttp

from bot.adapters.base import DeliveryError
from bot.adapters.outbound import check_errcode
from bot.adapters.reconnect import backoff_delay, pause
from bot.adapters.wecom_aibot_link import (
    Link,
    SerialByReqId,
    SubscribeFailed,
    decode,
    describe,
    new_req_id,
    req_id_of,
    subscribe,
)
from bot.adapters.wecom_bot_inbound import (
    WELCOME_BODY,
    WeComBotPayloadError,
    aibot_event,
    parse_aibot_message,
)
from bot.adapters.wecom_send import RETRYABLE
from bot.clock import Clock
from bot.messages import Inbound

__all__ = ["DEFAULT_URL", "AibotConnection", "SubscribeFailed", "WsBotTransport"]

log = logging.getLogger(__name__)
T = TypeVar("T")
OnMessages = Callable[[list[Inbound]], Awaitable[object]]
Outcome = Literal["replaced", "worked"]

DEFAULT_URL = "wss://openws.work.weixin.qq.com"
MSG_CALLBACK, EVENT_CALLBACK = "aibot_msg_callback", "aibot_event_callback"
SEND_MSG, RESPOND_WELCOME = "aibot_send_msg", "aibot_respond_welcome_msg"
CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 2.0
HANDLER_GRACE = 5.0  # how long run() waits, when ending, for messages still being accepted


class _Stopped(Exception):
    """stop() was called while waiting."""


# A network or protocol failure: logged as one line and retried. Anything else is a bug and
# gets a traceback (and is retried too).
NETWORK_FAULTS = (SubscribeFailed, aiohttp.ClientError, OSError, TimeoutError)


class AibotConnection:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        url: str = DEFAULT_URL,
        bot_id: str,
        secret: str,
        on_messages: OnMessages,
        clock: Clock,
        heartbeat: float = 30.0,
        ack_timeout: float = 5.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.http, self.url, self.bot_id = http, url, bot_id
        self._secret = secret
        self.on_messages, self.clock = on_messages, clock
        self.heartbeat, self.ack_timeout = heartbeat, ack_timeout
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.rng = rng or random.Random()
        self.connected = asyncio.Event()  # set while subscribed
        self.replaced = False  # run() ended because another connection took the bot over
        self._stopping = asyncio.Event()
        self._link: Link | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial = SerialByReqId()

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"AibotConnection({self.url}, bot_id={self.bot_id})"

    def stop(self) -> None:
        """Make run() return promptly: waits are abandoned and the connection is closed."""
        self._stopping.set()

    async def run(self) -> None:
        """Until stop(), or until a newer connection takes the bot over (``replaced``)."""
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    outcome: Outcome | None = await self._connect_once()
                except _Stopped:
                    break
                except NETWORK_FAULTS as e:
                    log.warning("wecom aibot: %s", describe(e))  # expected: no traceback
                    outcome = None
                except Exception:  # a bug must not end the long connection for good
                    log.exception("wecom aibot: unexpected failure")
                    outcome = None
                if outcome == "replaced":
                    self.replaced = True
                    log.warning("wecom aibot: replaced by a newer connection; not reconnecting")
                    break
                if outcome == "worked":
                    failures = 0
                delay = backoff_delay(failures, self.backoff_base, self.backoff_cap, self.rng)
                failures += 1
                log.info("wecom aibot: reconnecting in %.1f s", delay)
                await pause(self._stopping, delay)
        finally:
            self.connected.clear()
            await self._finish_handlers()
        log.info("wecom aibot long connection stopped")

    async def send(
        self, cmd: str, body: dict[str, Any], *, req_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its ack.

        ``req_id`` defaults to a fresh one; a reply passes the inbound frame's. Raises
        ``DeliveryError``: retryable for no ack within ``ack_timeout``, a lost or absent
        connection and rate limits (45009), permanent for any other errcode.
        """
        req_id = req_id or new_req_id(cmd)
        async with self._serial.hold(req_id):
            ack = await self._request(cmd, req_id, body)
        check_errcode(ack, f"wecom aibot {cmd}", RETRYABLE)
        return ack

    async def _request(self, cmd: str, req_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._link is None:  # reconnecting: worth a short wait rather than a retry later
            with suppress(TimeoutError):
                async with asyncio.timeout(self.ack_timeout):
                    await self.connected.wait()
        link = self._link
        if link is None or link.ws.closed:
            raise DeliveryError(
                f"wecom aibot {cmd}: not connected", retryable=True, code="disconnected"
            )
        return await link.request(cmd, req_id, body)

    async def _connect_once(self) -> Outcome:
        ws = await self._unless_stopped(self._ws_connect())
        link = Link(ws, self.ack_timeout)
        try:
            await self._unless_stopped(subscribe(ws, self.bot_id, self._secret, self.ack_timeout))
            self._link = link
            self.connected.set()
            log.info("wecom aibot connected to %s as bot %s", self.url, self.bot_id)
            reader = asyncio.create_task(self._read(link))
            beat = asyncio.create_task(self._beat(link))
            stop = asyncio.create_task(self._stopping.wait())
            try:
                done, _ = await asyncio.wait(
                    {reader, beat, stop}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (reader, beat, stop):
                    task.cancel()
                await asyncio.wait({reader, beat, stop})
            if stop in done:
                raise _Stopped
            return reader.result() if reader in done else "worked"
        finally:
            self._link = None
            self.connected.clear()
            link.lost()
            with suppress(*NETWORK_FAULTS):
                await ws.close()

    async def _ws_connect(self) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await self.http.ws_connect(
                self.url, timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT)
            )

    async def _read(self, link: Link) -> Outcome:
        while True:
            msg = await link.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                if self._on_frame(link, msg.data):
                    return "replaced"
            elif msg.type is aiohttp.WSMsgType.ERROR:
                log.info("wecom aibot connection lost: %s", describe(link.ws.exception()))
                return "worked"
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                log.info("wecom aibot closed by the server (code %s)", link.ws.close_code)
                return "worked"
            else:
                log.warning("wecom aibot: %s frame ignored", msg.type.name)

    async def _beat(self, link: Link) -> None:
        """Returns when the link is to be considered dead."""
        while True:
            await asyncio.sleep(self.heartbeat)
            if link.dead:
                log.warning("wecom aibot: %d pings unanswered; reconnecting", link.missed)
                return
            try:
                await link.ping()
            except ConnectionError:
                return

    def _on_frame(self, link: Link, raw: str) -> bool:
        """Route one server frame; True when a newer connection replaced this one. Slow work
        (accepting a message, replying) runs in tasks so that acks keep flowing meanwhile."""
        frame = decode(raw)
        if frame is None:
            log.warning("wecom aibot: unreadable frame ignored")
            return False
        cmd, req_id, body = frame.get("cmd"), req_id_of(frame), frame.get("body")
        if not cmd:
            link.on_ack(frame)
        elif not isinstance(body, dict):
            log.warning("wecom aibot: %.40s frame without a body ignored", cmd)
        elif cmd == MSG_CALLBACK:
            self._spawn(self._on_message(req_id, body))
        elif cmd == EVENT_CALLBACK:
            eventtype = aibot_event(body, framed_as_event=True)
            if eventtype == "disconnected_event":
                return True
            if eventtype == "enter_chat" and req_id:
                self._spawn(self._welcome(req_id))
        else:
            log.info("wecom aibot: %.40s frame not handled", cmd)
        return False

    async def _on_message(self, req_id: str, body: dict[str, Any]) -> None:
        try:
            message = parse_aibot_message(body, self.clock.now())
        except WeComBotPayloadError as e:
            log.warning("wecom aibot: message %.80s ignored: %s", req_id, e)
            return
        if message is None:
            return
        try:
            await self.on_messages([message])
        except Exception:  # e.g. the database is down; the next message may fare better
            log.exception("wecom aibot: message %s could not be accepted", message.event_id)

    async def _welcome(self, req_id: str) -> None:
        try:
            await self.send(RESPOND_WELCOME, dict(WELCOME_BODY), req_id=req_id)
        except DeliveryError as e:
            log.warning("wecom aibot: welcome not delivered: %s", e)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_handlers(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=HANDLER_GRACE)
        for task in late:
            task.cancel()
        if late:
            log.warning("wecom aibot: %d message handlers cancelled at stop", len(late))
            await asyncio.wait(late)

    async def _unless_stopped(self, aw: Coroutine[Any, Any, T]) -> T:
        """Await `aw`, or give it up as soon as stop() is called."""
        work = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if work.cancelled():
            raise _Stopped
        return work.result()


class WsBotTransport:
    """``BotTransport`` (wecom_send) over the long connection: ``aibot_send_msg``, acked, so
    ``WeComBotSender(http, transport=WsBotTransport(conn), clock=…)`` posts for real."""

    def __init__(self, connection: AibotConnection) -> None:
        self.connection = connection

    def __repr__(self) -> str:
        return f"WsBotTransport(bot_id={self.connection.bot_id})"

    async def send_msg(self, chatid: str, body: dict[str, Any]) -> None:
        await self.connection.send(SEND_MSG, {"chatid": chatid, **body})
