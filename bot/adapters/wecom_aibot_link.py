"""One subscribed 智能机器人 WebSocket (PLATFORMS.md §3): the frame format, the subscription,
commands waiting for their acks, and the heartbeat's bookkeeping. ``wecom_aibot_ws`` owns the
connection's life.

Every frame is JSON ``{cmd, headers: {req_id}, body}``; the server answers a command with
``{headers: {req_id}, errcode, errmsg}`` and no ``cmd``, which is how acks are told apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.adapters.base import DeliveryError

__all__ = [
    "Link",
    "SerialByReqId",
    "SubscribeFailed",
    "decode",
    "describe",
    "encode",
    "new_req_id",
    "req_id_of",
    "subscribe",
]

log = logging.getLogger(__name__)

PING, SUBSCRIBE = "ping", "aibot_subscribe"
MAX_MISSED_PINGS = 2  # the official SDK's threshold


def new_req_id(cmd: str) -> str:
    """``<cmd>_<ms>_<random>``, the official SDK's shape: unique, and readable in logs."""
    return f"{cmd}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def encode(cmd: str, req_id: str, body: dict[str, Any] | None = None) -> str:
    frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        frame["body"] = body
    # Compact UTF-8: escaped Chinese would triple the bytes counted against content limits.
    return json.dumps(frame, ensure_ascii=False)


def decode(raw: str) -> dict[str, Any] | None:
    """A frame as a JSON object, or None for anything else."""
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return frame if isinstance(frame, dict) else None


def req_id_of(frame: dict[str, Any]) -> str:
    headers = frame.get("headers")
    req_id = headers.get("req_id") if isinstance(headers, dict) else None
    return req_id if isinstance(req_id, str) else ""


class SubscribeFailed(Exception):
    """``aibot_subscribe`` was refused or went unanswered; the text holds no secret."""


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse, bot_id: str, secret: str, ack_timeout: float
) -> None:
    """Authenticate a fresh socket; raises ``SubscribeFailed``."""
    req_id = new_req_id(SUBSCRIBE)
    await ws.send_str(encode(SUBSCRIBE, req_id, {"bot_id": bot_id, "secret": secret}))
    try:
        async with asyncio.timeout(ack_timeout):
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise SubscribeFailed(f"connection ended ({msg.type.name}) unanswered")
                ack = decode(msg.data)
                if ack is not None and req_id_of(ack) == req_id:
                    break
                log.info("wecom aibot: frame before the subscription answer ignored")
    except TimeoutError:
        raise SubscribeFailed(f"no subscription answer within {ack_timeout:g} s") from None
    code = ack.get("errcode")
    if code != 0:
        errmsg = str(ack.get("errmsg", ""))[:120]
        raise SubscribeFailed(f"subscription refused: errcode {code} {errmsg}")


class SerialByReqId:
    """One command per ``req_id`` at a time (the SDK's rule): a reply's parts, which share the
    inbound frame's req_id, go out in order, each after the previous one's ack."""

    def __init__(self) -> None:
        # req_id -> (its lock, how many senders hold or await it)
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, req_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(req_id) or (asyncio.Lock(), 0)
        self._locks[req_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[req_id]
            if users == 1:
                del self._locks[req_id]
            else:
                self._locks[req_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class LinkLost(ConnectionError):
    """The connection ended while a command waited for its ack."""


@dataclass
class Link:
    ws: aiohttp.ClientWebSocketResponse
    ack_timeout: float
    missed: int = 0  # pings sent since one was last answered
    _acks: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _pings: set[str] = field(default_factory=set)

    async def request(self, cmd: str, req_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send a command and return its ack frame, whatever its errcode.

        Raises a retryable ``DeliveryError`` when no ack comes within ``ack_timeout`` seconds or
        the connection ends first: the platform may or may not have acted on it.
        """
        what = f"wecom aibot {cmd}"
        ack: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[req_id] = ack
        try:
            await self.ws.send_str(encode(cmd, req_id, body))
            async with asyncio.timeout(self.ack_timeout):
                return await ack
        except TimeoutError:
            raise DeliveryError(
                f"{what}: no ack within {self.ack_timeout:g} s", retryable=True, code="timeout"
            ) from None
        except ConnectionError:
            raise DeliveryError(
                f"{what}: connection lost", retryable=True, code="disconnected"
            ) from None
        finally:
            if self._acks.get(req_id) is ack:
                del self._acks[req_id]

    @property
    def dead(self) -> bool:
        return self.missed >= MAX_MISSED_PINGS

    async def ping(self) -> None:
        """Send a heartbeat; counts as missed until its ack arrives. Raises ConnectionError
        when the socket is already closing."""
        self.missed += 1
        req_id = new_req_id(PING)
        self._pings.add(req_id)
        await self.ws.send_str(encode(PING, req_id))

    def on_ack(self, frame: dict[str, Any]) -> None:
        req_id = req_id_of(frame)
        waiting = self._acks.pop(req_id, None)
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(frame)
        elif req_id in self._pings:
            self._pings.discard(req_id)
            if frame.get("errcode") == 0:
                self.missed = 0
            else:
                log.warning("wecom aibot: ping answered with errcode %.20s", frame.get("errcode"))
        else:
            log.info("wecom aibot: ack for unknown request %.80s ignored", req_id)

    def lost(self) -> None:
        """Fail every command still waiting: its ack will never come on this socket."""
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(LinkLost())
        self._acks.clear()


def describe(error: BaseException | None) -> str:
    """One line about a failure (URLs here carry no credentials)."""
    if error is None:
        return "unknown error"
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"handshake refused: HTTP {error.status}"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
