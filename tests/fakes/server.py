"""What both fake platforms share: a controllable clock, recording, fault injection, a
rolling-window rate limiter and access tokens.

The fakes run as real aiohttp applications so the bot's HTTP code is exercised for real;
everything time-dependent reads an injectable ``clock`` (epoch seconds) so tests move time
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.test_utils import TestServer

Clock = Callable[[], float]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

# 2026-11-02 09:00 Asia/Shanghai, the Monday that tests/conftest.py's FixedClock starts on.
DEFAULT_EPOCH = 1_793_581_200.0


class ManualClock:
    """Epoch seconds that only move when told to.

    To share the bot's ``FixedClock`` instead, pass ``lambda: fixed.now().timestamp()``.
    """

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class SentMessage:
    """One message the platform accepted for display."""

    endpoint: str  # e.g. "webhook/send", "groupMessages/send", "robot/send"
    target: str  # robot key, chatid, touser, openConversationId, user id, ...
    msgtype: str  # WeCom/DingTalk msgtype, or the OpenAPI msgKey
    payload: dict[str, Any]  # the request body as received
    received_at: float  # fake clock
    text: str | None = None  # text/markdown content, for assertions


@dataclass
class RecordedCall:
    """Every HTTP request, accepted or not, with what the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: float
    status: int | None = None  # None: dropped without an answer
    response: Any = None  # the decoded JSON answer, when there was one
    fault: str | None = None  # "fail" | "delay" | "drop" when injected

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    kind: Literal["fail", "delay", "drop"]
    path: str | None = None
    status: int | None = None
    errcode: int | str | None = None
    errmsg: str = "injected fault"
    seconds: float = 0.0

    def matches(self, path: str) -> bool:
        return self.path is None or path == self.path or path.startswith(self.path + "/")


class RollingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds, on an injectable clock.

    A refused hit is not itself counted, so a client that backs off recovers once the
    window has slid past its earlier sends; ``block`` adds a penalty period after a refusal
    (DingTalk is reported to block a robot for ~10 minutes, unconfirmed, so it is optional).
    """

    def __init__(self, limit: int, window: float, clock: Clock, block: float = 0.0) -> None:
        self.limit, self.window, self.block, self._clock = limit, window, block, clock
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._blocked_until: dict[str, float] = {}

    def hit(self, key: str) -> bool:
        now = self._clock()
        if self._blocked_until.get(key, float("-inf")) > now:
            return False
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            if self.block:
                self._blocked_until[key] = now + self.block
            return False
        hits.append(now)
        return True


TokenState = Literal["ok", "missing", "invalid", "expired"]


class TokenStore:
    """Access tokens with a lifetime on the fake clock; tests can expire or revoke them early."""

    def __init__(self, clock: Clock, lifetime: float = 7200.0) -> None:
        self.lifetime, self._clock = lifetime, clock
        self._expires: dict[str, float] = {}
        self._revoked: set[str] = set()

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        self._expires[token] = self._clock() + self.lifetime
        return token

    def check(self, token: str | None) -> TokenState:
        if not token:
            return "missing"
        if token in self._revoked or token not in self._expires:
            return "invalid"
        return "expired" if self._clock() >= self._expires[token] else "ok"

    def invalidate(self) -> None:
        self._revoked.update(self._expires)

    def expire(self) -> None:
        now = self._clock()
        self._expires = {t: min(exp, now) for t, exp in self._expires.items()}


class FakeServer:
    """Base of the fakes: owns ``app``, records calls and messages, injects faults."""

    def __init__(self, clock: Clock = time.time) -> None:
        # Epoch rather than monotonic time: signatures, tickets, session expiry and callback
        # timestamps are all compared with epoch values (any clock works for rate windows).
        self.clock = clock
        # aiohttp's 1 MiB default would refuse legal 20 MB file uploads and 2 MB images.
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 << 20)
        self.base_url = ""  # set by start(); e.g. "http://127.0.0.1:41234"
        self.sent: list[SentMessage] = []
        self.calls: list[RecordedCall] = []
        self._faults: list[Fault] = []

    async def start(self, aiohttp_server: ServerFactory) -> str:
        """Serve ``app`` with pytest-aiohttp's ``aiohttp_server`` fixture; returns the base URL."""
        server = await aiohttp_server(self.app)
        self.base_url = str(server.make_url("")).rstrip("/")
        return self.base_url

    def url(self, path: str) -> str:
        if not self.base_url:
            raise RuntimeError("fake not started: await fake.start(aiohttp_server) first")
        return self.base_url + path

    # --- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int | None = None,
        *,
        errcode: int | str | None = None,
        errmsg: str = "injected fault",
        path: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests (to ``path``, if given) with an error instead.

        Without ``errcode`` the answer is HTTP ``status`` (default 500) with a plain body;
        with it, the platform's own error JSON (see ``error_response``).
        """
        self._faults += [Fault("fail", path, status, errcode, errmsg) for _ in range(n)]

    def delay_next(self, n: int, seconds: float, *, path: str | None = None) -> None:
        """Really sleep ``seconds`` before handling the next ``n`` requests normally."""
        self._faults += [Fault("delay", path, seconds=seconds) for _ in range(n)]

    def drop_next(self, n: int = 1, *, path: str | None = None) -> None:
        """Close the connection without answering (client sees ServerDisconnectedError)."""
        self._faults += [Fault("drop", path) for _ in range(n)]

    def error_response(
        self, request: web.Request, status: int | None, errcode: int | str, errmsg: str
    ) -> web.Response:
        raise NotImplementedError

    def _take_fault(self, path: str) -> Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.matches(path):
                return self._faults.pop(i)
        return None

    @web.middleware  # marks it new-style; aiohttp cannot infer that for a bound method
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Reading a multipart body here would starve request.post() in the handler.
        multipart = request.content_type.startswith("multipart/")
        body = b"" if multipart else await request.read()
        call = RecordedCall(request.method, request.path, dict(request.query), body, self.clock())
        self.calls.append(call)
        fault = self._take_fault(request.path)
        if fault is not None:
            call.fault = fault.kind
        if fault is not None and fault.kind == "drop":
            assert request.transport is not None
            request.transport.close()
            raise web.HTTPInternalServerError()  # never written: the socket is gone
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        response: web.StreamResponse
        if fault is not None and fault.kind == "fail":
            if fault.errcode is None:
                response = web.Response(status=fault.status or 500, text=fault.errmsg)
            else:
                response = self.error_response(request, fault.status, fault.errcode, fault.errmsg)
        else:
            response = await handler(request)
        call.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            call.response = json.loads(response.text or "null")
        return response

    # --- recording -----------------------------------------------------------------------

    def record(
        self,
        endpoint: str,
        target: str,
        msgtype: str,
        payload: dict[str, Any],
        text: str | None = None,
    ) -> SentMessage:
        message = SentMessage(endpoint, target, msgtype, payload, self.clock(), text)
        self.sent.append(message)
        return message

    def sent_to(self, target: str) -> list[SentMessage]:
        return [m for m in self.sent if m.target == target]

    def texts(self, target: str | None = None) -> list[str]:
        """Text/markdown contents accepted so far, optionally for one target, in order."""
        return [
            m.text
            for m in self.sent
            if m.text is not None and (target is None or m.target == target)
        ]


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or None when it is not JSON (callers answer with their own error)."""
    try:
        return json.loads(await request.read())
    except (UnicodeDecodeError, ValueError):
        return None


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8"))
