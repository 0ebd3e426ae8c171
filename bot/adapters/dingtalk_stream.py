"""DingTalk Stream mode (PLATFORMS.md §6): robot messages over an outbound WebSocket, so the
bot needs no public address, which is what an agency intranet usually allows.

One `StreamClient.run()` task per process: open a connection with a fresh ticket, answer every
frame with an ACK, hand robot messages to the inbox, and reconnect with a capped, jittered
backoff whenever the connection ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Literal, TypeVar
from urllib.parse import quote_plus

import aiohttp
from yarl import URL

from bot import __version__
from bot.adapters.dingtalk_inbound import DingTalkPayloadError, parse_bot_message
from bot.adapters.reconnect import backoff_delay, pause
from bot.clock import Clock
from bot.messages import Inbound

__all__ = ["BOT_TOPIC", "StreamClient", "StreamOpenError"]

log = logging.getLogger(__name__)
T = TypeVar("T")
OnMessages = Callable[[list[Inbound]], Awaitable[object]]
Outcome = Literal["handover", "worked", "failed"]

BOT_TOPIC = "/v1.0/im/bot/messages/get"
OPEN_PATH = "/v1.0/gateway/connections/open"
SUBSCRIPTIONS = (
    {"type": "EVENT", "topic": "*"},  # "*" is the only EVENT topic accepted (§6)
    {"type": "CALLBACK", "topic": BOT_TOPIC},
)
OPEN_TIMEOUT = 15.0
_TICKET = re.compile(r"ticket=[^&\s'\"]+")
HEARTBEAT = 30.0  # WebSocket pings find a connection a NAT or proxy silently dropped


class StreamOpenError(Exception):
    """The gateway did not hand out a connection; the text carries no credentials."""


# What a gateway or connection failure looks like; anything else is a bug and gets a traceback.
NETWORK_FAULTS = (StreamOpenError, aiohttp.ClientError, OSError, TimeoutError, ValueError)


class _Stopped(Exception):
    """stop() was called while waiting."""


class StreamClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        client_id: str,
        client_secret: str,
        on_messages: OnMessages,
        clock: Clock,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        rng: random.Random | None = None,
        robot_names: Iterable[str] = (),
    ) -> None:
        self.http = http
        self.open_url = api_base.rstrip("/") + OPEN_PATH
        self.client_id = client_id
        self._secret = client_secret
        self.on_messages = on_messages
        self.clock = clock
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.rng = rng or random.Random()
        self.robot_names = tuple(robot_names)
        self.connected = asyncio.Event()  # set while a connection is open
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"StreamClient({self.open_url}, client_id={self.client_id})"

    def stop(self) -> None:
        """Make run() return promptly: waits are abandoned and the connection is closed."""
        self._stopping.set()

    async def run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    outcome = await self._connect_once()
                except _Stopped:
                    break
                except NETWORK_FAULTS as e:
                    log.warning("dingtalk stream: %s", _describe(e))  # expected: no traceback
                    outcome = "failed"
                except Exception:  # a bug must not end Stream mode for good
                    log.exception("dingtalk stream: unexpected failure")
                    outcome = "failed"
                if outcome == "handover":
                    failures = 0
                    continue  # an announced disconnect: the new connection is wanted at once
                if outcome == "worked":
                    failures = 0
                delay = backoff_delay(failures, self.backoff_base, self.backoff_cap, self.rng)
                failures += 1
                log.info("dingtalk stream: reconnecting in %.1f s", delay)
                await pause(self._stopping, delay)
        finally:
            self.connected.clear()
        log.info("dingtalk stream stopped")

    async def _connect_once(self) -> Outcome:
        endpoint, ticket = await self._unless_stopped(self._open())
        url = URL(f"{endpoint}?ticket={quote_plus(ticket)}", encoded=True)
        ws = await self._unless_stopped(self._ws_connect(url))
        loop = asyncio.get_running_loop()
        started, frames = loop.time(), 0
        log.info("dingtalk stream connected to %s", URL(endpoint).with_query(None))
        self.connected.set()
        try:
            while True:
                msg = await self._unless_stopped(ws.receive())
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frames += 1
                    if await self._on_frame(ws, msg.data):
                        return "handover"
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.info("dingtalk stream connection lost: %s", _describe(ws.exception()))
                    break
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    log.info("dingtalk stream closed by the server (code %s)", ws.close_code)
                    break
                else:
                    log.warning("dingtalk stream: %s frame ignored", msg.type.name)
        finally:
            self.connected.clear()
            await ws.close()
        # A connection that carried nothing and ended at once is a failure to back off from.
        return "worked" if frames or loop.time() - started >= self.backoff_cap else "failed"

    async def _open(self) -> tuple[str, str]:
        body = {
            "clientId": self.client_id,
            "clientSecret": self._secret,
            "subscriptions": list(SUBSCRIPTIONS),
            "ua": f"duban/{__version__}",
            "localIp": _local_ip(),
        }
        headers = {"Accept": "application/json"}
        async with (
            asyncio.timeout(OPEN_TIMEOUT),
            self.http.post(self.open_url, json=body, headers=headers) as response,
        ):
            if response.status != 200:
                raise StreamOpenError(f"gateway answered HTTP {response.status}")
            answer = await response.json(content_type=None)
        endpoint = answer.get("endpoint") if isinstance(answer, dict) else None
        ticket = answer.get("ticket") if isinstance(answer, dict) else None
        if not isinstance(endpoint, str) or not endpoint.startswith(("ws://", "wss://")):
            raise StreamOpenError("gateway answer holds no WebSocket endpoint")
        if not isinstance(ticket, str) or not ticket:
            raise StreamOpenError("gateway answer holds no ticket")
        return endpoint, ticket

    async def _ws_connect(self, url: URL) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(OPEN_TIMEOUT):
            return await self.http.ws_connect(
                url, heartbeat=HEARTBEAT, timeout=aiohttp.ClientWSTimeout(ws_close=5.0)
            )

    async def _unless_stopped(self, aw: Coroutine[Any, Any, T] | asyncio.Future[T]) -> T:
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

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> bool:
        """Answer one server frame; True when the server announced it will disconnect."""
        try:
            frame = json.loads(raw)
        except (ValueError, RecursionError):
            frame = None
        if not isinstance(frame, dict):
            log.warning("dingtalk stream: unreadable frame ignored")
            return False
        headers: dict[str, Any] = frame["headers"] if isinstance(frame.get("headers"), dict) else {}
        kind, topic, data = frame.get("type"), headers.get("topic"), frame.get("data")
        if (kind, topic) == ("SYSTEM", "disconnect"):
            log.info("dingtalk stream: the server asks to reconnect (%.200s)", data)
            return True
        message_id = headers.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            log.warning("dingtalk stream: %.20s frame without messageId ignored", kind)
            return False

        async def ack(code: int, reply: Any, message: str = "OK") -> None:
            answer = {
                "code": code,
                "headers": {"messageId": message_id, "contentType": "application/json"},
                "message": message,
                "data": reply if isinstance(reply, str) else json.dumps(reply),
            }
            await ws.send_str(json.dumps(answer, ensure_ascii=False))

        if (kind, topic) == ("SYSTEM", "ping"):
            await ack(200, data if isinstance(data, str) else json.dumps(data))
        elif (kind, topic) == ("CALLBACK", BOT_TOPIC):
            await self._on_bot_message(message_id, data, ack)
        elif kind == "EVENT":
            log.info("dingtalk event %.100s acknowledged", headers.get("eventType") or topic)
            await ack(200, {"status": "SUCCESS", "message": "OK"})
        else:
            log.info("dingtalk stream: %.20s %.100s not handled", kind, topic)
            await ack(404, {"response": None}, "unsupported topic")
        return False

    async def _on_bot_message(
        self, message_id: str, data: Any, ack: Callable[..., Awaitable[None]]
    ) -> None:
        try:
            payload = json.loads(data) if isinstance(data, str) else data
            if not isinstance(payload, dict):
                raise DingTalkPayloadError("data not a JSON object")
            message = parse_bot_message(
                payload, self.clock.now(), source="dingtalk_stream", robot_names=self.robot_names
            )
        except (ValueError, RecursionError) as e:
            # 200 all the same: a redelivery would bring the same unreadable bytes back.
            await ack(200, {"response": None})
            log.warning("dingtalk stream: bot message %s ignored: %s", message_id, _describe(e))
            return
        if message is None:
            log.info("dingtalk message of type %.40r ignored", payload.get("msgtype"))
        else:
            try:
                await self.on_messages([message])
            except Exception:  # e.g. the database is down: say so, so DingTalk may retry
                log.exception("dingtalk stream: bot message %s could not be accepted", message_id)
                await ack(500, {"response": None}, "not accepted")
                return
        await ack(200, {"response": None})


def _describe(error: BaseException | None) -> str:
    """One line about a failure, without the ticket that aiohttp puts in URLs it reports."""
    if error is None:
        return "unknown error"
    if isinstance(error, aiohttp.ClientResponseError):
        text = f"HTTP {error.status} {error.message}"
    else:
        text = str(error)
    text = _TICKET.sub("ticket=***", text)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _local_ip() -> str:
    """The address of the interface that routes outwards (informational for the gateway).

    Connecting a UDP socket sends nothing; it only picks the route.
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"
