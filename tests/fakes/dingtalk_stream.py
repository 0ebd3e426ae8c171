"""DingTalk Stream mode on the fake (PLATFORMS.md §6): connections/open hands out single-use
tickets, ``GET /connect?ticket=`` upgrades to a WebSocket, and tests push frames and await
the client's ACKs. Mixed into ``FakeDingTalk``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.server import Clock, read_json

BOT_TOPIC = "/v1.0/im/bot/messages/get"
FRAME_TYPES = ("SYSTEM", "EVENT", "CALLBACK")  # a tuple: membership of any JSON value is safe


def _api_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@dataclass
class StreamConnection:
    id: str
    ws: web.WebSocketResponse
    subscriptions: list[dict[str, str]]
    frames: list[Any] = field(default_factory=list)  # everything this client sent
    # Set once the handshake is written: the client may see the 101 before this task resumes.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def subscribed(self, frame_type: str, topic: str) -> bool:
        return frame_type == "SYSTEM" or any(
            s.get("type") == frame_type and s.get("topic") in (topic, "*")
            for s in self.subscriptions
        )


class DingTalkStream:
    clock: Clock
    app: web.Application
    app_key: str
    app_secret: str
    corp_id: str

    def __init__(self, ticket_ttl: float = 90.0) -> None:
        self.ticket_ttl = ticket_ttl
        self.stream_acks: list[dict[str, Any]] = []  # every ACK received, in order
        self._tickets: dict[str, tuple[float, list[dict[str, str]]]] = {}
        self._connections: list[StreamConnection] = []
        self._pending: dict[str, tuple[StreamConnection, asyncio.Future[dict[str, Any]]]] = {}
        self.app.router.add_post("/v1.0/gateway/connections/open", self._open)
        self.app.router.add_get("/connect", self._connect)
        self.app.on_shutdown.append(self._close_streams)

    @property
    def stream_connections(self) -> int:
        return len(self._connections)

    @property
    def stream_frames(self) -> list[Any]:
        """Frames the clients sent on live connections, oldest connection first."""
        return [frame for conn in self._connections for frame in conn.frames]

    async def _open(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return _api_error(400, "invalidParameter", "body is not a JSON object")
        if (body.get("clientId"), body.get("clientSecret")) != (self.app_key, self.app_secret):
            return _api_error(401, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        subscriptions = body.get("subscriptions")
        valid = isinstance(subscriptions, list) and all(
            isinstance(s, dict)
            and s.get("type") in FRAME_TYPES
            and isinstance(s.get("topic"), str)
            # EVENT subscriptions must use "*": events are chosen in the console (§6).
            and (s["type"] != "EVENT" or s["topic"] == "*")
            for s in subscriptions
        )
        if not valid:
            return _api_error(400, "invalidParameter.subscriptions", "bad subscriptions")
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (self.clock() + self.ticket_ttl, cast(list[Any], subscriptions))
        endpoint = request.url.with_scheme("ws").with_path("/connect").with_query(None)
        return web.json_response({"endpoint": str(endpoint), "ticket": ticket})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        # pop: a ticket is single-use even when the handshake then fails.
        entry = self._tickets.pop(request.query.get("ticket", ""), None)
        if entry is None or self.clock() >= entry[0]:
            return _api_error(401, "invalidTicket", "ticket unknown, used or expired")
        ws = web.WebSocketResponse()
        conn = StreamConnection(secrets.token_hex(8), ws, entry[1])
        self._connections.append(conn)
        try:
            await ws.prepare(request)
            conn.ready.set()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_client_frame(conn, msg.data)
        finally:
            self._connections.remove(conn)
            conn.closed.set()
            for mid, (owner, future) in list(self._pending.items()):
                if owner is conn and not future.done():
                    future.set_exception(ConnectionError(f"stream closed before ACK of {mid}"))
        return ws

    def _on_client_frame(self, conn: StreamConnection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            frame = {"unparsable": data}
        conn.frames.append(frame)
        headers = frame.get("headers") if isinstance(frame, dict) else None
        mid = headers.get("messageId") if isinstance(headers, dict) else None
        if isinstance(frame, dict) and "code" in frame and mid:
            self.stream_acks.append(frame)
            pending = self._pending.get(mid)
            if pending is not None and not pending[1].done():
                pending[1].set_result(frame)

    def _route(self, frame_type: str, topic: str) -> StreamConnection:
        # The newest subscribed connection gets the frame, as after a reconnect.
        for conn in reversed(self._connections):
            if conn.subscribed(frame_type, topic):
                return conn
        raise LookupError(f"no stream connection subscribed to {frame_type} {topic}")

    async def stream_send(
        self,
        frame_type: str,
        topic: str,
        data: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        expect_ack: bool = True,
        ack_timeout: float = 2.0,
        connection: StreamConnection | None = None,
    ) -> dict[str, Any] | None:
        """Send one server frame; with ``expect_ack`` wait for and return the client's ACK
        (TimeoutError after ``ack_timeout`` s, ConnectionError if the connection closes)."""
        conn = connection or self._route(frame_type, topic)
        await conn.ready.wait()
        mid = secrets.token_hex(16)
        frame = {
            "specVersion": "1.0",
            "type": frame_type,
            "headers": {
                "appId": self.app_key,
                "connectionId": conn.id,
                "contentType": "application/json",
                "messageId": mid,
                "time": str(int(self.clock() * 1000)),
                "topic": topic,
                **(headers or {}),
            },
            "data": json.dumps(data, ensure_ascii=False),
        }
        if not expect_ack:
            await conn.ws.send_json(frame)
            return None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = (conn, future)
        try:
            await conn.ws.send_json(frame)
            async with asyncio.timeout(ack_timeout):
                return await future
        finally:
            self._pending.pop(mid, None)

    async def stream_push_bot_message(
        self, payload: dict[str, Any], *, ack_timeout: float = 2.0
    ) -> dict[str, Any]:
        """A robot message (``bot_message(...)``) as a CALLBACK frame; returns the ACK."""
        ack = await self.stream_send("CALLBACK", BOT_TOPIC, payload, ack_timeout=ack_timeout)
        assert ack is not None
        return ack

    async def stream_push_event(
        self, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """An EVENT frame (topic = event type); returns the ACK, whose data should hold a
        status SUCCESS or LATER."""
        headers = {
            "eventType": event_type,
            "eventId": event_id or secrets.token_hex(16),
            "eventBornTime": str(int(self.clock() * 1000)),
            "eventCorpId": self.corp_id,
        }
        ack = await self.stream_send("EVENT", event_type, data, headers=headers)
        assert ack is not None
        return ack

    async def stream_ping(self, opaque: str | None = None) -> dict[str, Any]:
        """SYSTEM ping; the client must ACK with the same data (checked here)."""
        data = {"opaque": opaque or secrets.token_hex(8)}
        ack = await self.stream_send("SYSTEM", "ping", data)
        assert ack is not None
        echoed = json.loads(ack["data"]) if isinstance(ack.get("data"), str) else ack.get("data")
        assert ack.get("code") == 200 and echoed == data, f"ping not echoed: {ack}"
        return ack

    async def stream_disconnect(
        self, reason: str = "fake: server restarting", *, grace: float = 0.0
    ) -> None:
        """SYSTEM disconnect to every connection, then close them after ``grace`` seconds
        (the real server waits ~10 s; frames arrive in order, so 0 still delivers it)."""
        connections = list(self._connections)
        for conn in connections:
            data = {"reason": reason}
            await self.stream_send("SYSTEM", "disconnect", data, expect_ack=False, connection=conn)
        if grace:
            await asyncio.sleep(grace)
        for conn in connections:
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"disconnect")
        for conn in connections:
            await conn.closed.wait()

    async def stream_wait_closed(self) -> None:
        """Until every current connection is gone (e.g. after the client closed it); wrap
        in ``asyncio.timeout``: the fake's own bookkeeping ends a moment after the client's."""
        for conn in list(self._connections):
            await conn.closed.wait()

    async def _close_streams(self, _app: web.Application) -> None:
        for conn in list(self._connections):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
