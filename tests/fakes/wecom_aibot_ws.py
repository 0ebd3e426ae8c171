"""WeCom 智能机器人 long connection on the fake (PLATFORMS.md §3): a WebSocket that takes
``aibot_subscribe``, acks pings and commands, and lets tests push message and event callbacks.

It lives on a ``FakeWeCom``'s app (tests/fakes/wecom.py stays as it is), sharing its clock,
bot credentials, recording (``wecom.sent``, endpoint = the command) and the 20/min limiter,
which the HTTP stand-in ``/aibot/send`` also counts against: both are the same bot. The app's
fault injection reaches the handshake: ``wecom.fail_next(1, 503, path=fake.path)``; a
``fail_next`` without ``path`` may hit it too. Build it before the app starts::

    wecom = FakeWeCom(clock=...)
    aibot = FakeAibotWs(wecom)            # adds GET /aibot/ws to wecom.app
    await wecom.start(aiohttp_server)
    conn = AibotConnection(http, url=aibot.url, bot_id=wecom.aibot_id, secret=..., ...)

The real server takes one connection per bot: a successful subscription sends the older one a
``disconnected_event`` and closes it. Error codes marked "(fake)" are this fake's choice.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_rules import AIBOT_LIMITS, ERRMSG, content_error, text_of

SUBSCRIBE_REFUSED = 40001  # (fake) wrong bot_id or secret, or a command before subscribing
UNKNOWN_REQ_ID = 40035  # (fake) a reply to a req_id this server never pushed
REPLY_EXPIRED = 40036  # (fake) a welcome reply later than 5 s after its enter_chat event
UNKNOWN_CMD = 40008  # (fake)
WELCOME_WINDOW = 5.0
_dumps = partial(json.dumps, ensure_ascii=False)


@dataclass
class Pushed:
    """A callback the server sent: replies must carry its req_id."""

    kind: Literal["message", "event"]
    target: str  # the chat (group chatid, or the user for one-to-one)
    at: float


@dataclass
class AibotWsConnection:
    id: str
    ws: web.WebSocketResponse
    subscribed: bool = False
    frames: list[dict[str, Any]] = field(default_factory=list)  # what this client sent
    pushed: dict[str, Pushed] = field(default_factory=dict)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class AckFault:
    kind: Literal["errcode", "delay", "withhold"]
    errcode: int = 0
    seconds: float = 0.0


class FakeAibotWs:
    def __init__(self, wecom: FakeWeCom, *, path: str = "/aibot/ws") -> None:
        self.wecom, self.path = wecom, path
        self.ack_pings = True  # False: the server goes quiet, as a half-dead link does
        self.frames: list[dict[str, Any]] = []  # every client frame, all connections, in order
        # ("in", cmd, req_id) for client frames and ("out", "ack", req_id) for acks, in order.
        self.timeline: list[tuple[str, str, str]] = []
        self.subscriptions = 0  # successful ones, over the fake's life
        self._connections: list[AibotWsConnection] = []
        self._faults: deque[AckFault] = deque()
        self._changed = asyncio.Condition()
        self._late: set[asyncio.Task[None]] = set()
        wecom.app.router.add_get(path, self._connect)
        wecom.app.on_shutdown.append(self._close_all)

    @property
    def url(self) -> str:
        return self.wecom.url(self.path).replace("http://", "ws://", 1)

    @property
    def connections(self) -> list[AibotWsConnection]:
        """Live subscribed connections, oldest first."""
        return [c for c in self._connections if c.subscribed and not c.ws.closed]

    def frames_of(self, cmd: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("cmd") == cmd]

    # --- fault injection (commands other than subscribe and ping) -------------------------

    def ack_fail_next(self, errcode: int, n: int = 1) -> None:
        """Answer the next ``n`` commands with ``errcode``; nothing is shown."""
        self._faults += [AckFault("errcode", errcode=errcode) for _ in range(n)]

    def ack_delay_next(self, seconds: float, n: int = 1) -> None:
        """Act on the next ``n`` commands but ack them ``seconds`` later (a real sleep)."""
        self._faults += [AckFault("delay", seconds=seconds) for _ in range(n)]

    def ack_withhold_next(self, n: int = 1) -> None:
        """Act on the next ``n`` commands and never ack them."""
        self._faults += [AckFault("withhold") for _ in range(n)]

    # --- pushing callbacks ----------------------------------------------------------------

    def plain(self, encrypted_body: dict[str, str]) -> dict[str, Any]:
        """The plaintext of an HTTP callback body built by ``wecom.signed_aibot_callback`` or
        ``encrypt_aibot_json``: the long connection carries the same JSON unencrypted."""
        payload: dict[str, Any] = json.loads(
            self.wecom.aibot_crypto.decrypt(encrypted_body["encrypt"])
        )
        return payload

    async def push_message(
        self, payload: dict[str, Any], *, connection: AibotWsConnection | None = None
    ) -> str:
        """An ``aibot_msg_callback`` frame to the newest connection; returns its req_id once
        sent."""
        sender = payload.get("from")
        target = payload.get("chatid") or (sender.get("userid") if isinstance(sender, dict) else "")
        return await self._push("message", "aibot_msg_callback", payload, target, connection)

    async def push_event(
        self,
        eventtype: str,
        *,
        sender: str = "lisi",
        chatid: str | None = None,
        connection: AibotWsConnection | None = None,
        **event: Any,
    ) -> str:
        """An ``aibot_event_callback`` frame; returns its req_id once sent."""
        body: dict[str, Any] = {
            "msgid": secrets.token_hex(16),
            "create_time": int(self.wecom.clock()),
            "aibotid": self.wecom.aibot_id,
            "chattype": "group" if chatid else "single",
            "from": {"userid": sender},
            "msgtype": "event",
            "event": {"eventtype": eventtype, **event},
        }
        if chatid:
            body["chatid"] = chatid
        return await self._push("event", "aibot_event_callback", body, chatid or sender, connection)

    async def disconnect_replaced(self) -> None:
        """What a newer connection for the bot causes: ``disconnected_event``, then close."""
        for conn in self.connections:
            await self._replace(conn)
            await conn.closed.wait()

    async def drop(self) -> None:
        """Close every connection without notice (a restart, a network cut)."""
        for conn in list(self._connections):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"dropped")
            await conn.closed.wait()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, checked after every frame either way (wrap in
        ``asyncio.timeout``)."""
        async with self._changed:
            await self._changed.wait_for(condition)

    async def wait_subscriptions(self, count: int) -> None:
        """Until ``count`` subscriptions succeeded in all."""
        await self.wait_for(lambda: self.subscriptions >= count)

    async def wait_closed(self) -> None:
        """Until every connection is gone (wrap in ``asyncio.timeout``)."""
        for conn in list(self._connections):
            await conn.closed.wait()

    async def _push(
        self,
        kind: Literal["message", "event"],
        cmd: str,
        body: dict[str, Any],
        target: str,
        connection: AibotWsConnection | None,
    ) -> str:
        conn = connection or self._newest()
        req_id = f"{cmd}_{secrets.token_hex(8)}"
        conn.pushed[req_id] = Pushed(kind, target, self.wecom.clock())
        await conn.ws.send_json(
            {"cmd": cmd, "headers": {"req_id": req_id}, "body": body}, dumps=_dumps
        )
        return req_id

    def _newest(self) -> AibotWsConnection:
        live = self.connections
        if not live:
            raise LookupError("no subscribed aibot connection")
        return live[-1]

    # --- the server side ------------------------------------------------------------------

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        conn = AibotWsConnection(secrets.token_hex(8), ws)
        await ws.prepare(request)
        self._connections.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(conn, msg.data)
        finally:
            self._connections.remove(conn)
            conn.closed.set()
        return ws

    async def _on_frame(self, conn: AibotWsConnection, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            frame = {"unparsable": data}
        if not isinstance(frame, dict):
            frame = {"unparsable": data}
        conn.frames.append(frame)
        self.frames.append(frame)
        headers = frame.get("headers")
        req_id = headers.get("req_id", "") if isinstance(headers, dict) else ""
        cmd = frame.get("cmd")
        self.timeline.append(("in", str(cmd), str(req_id)))
        if not conn.subscribed:
            await self._subscribe(conn, req_id, cmd, frame.get("body"))
        elif cmd == "ping":
            if self.ack_pings:
                await self._ack(conn, req_id, 0)
        else:
            await self._command(conn, req_id, str(cmd), frame.get("body"))
        await self._notify()

    async def _subscribe(self, conn: AibotWsConnection, req_id: Any, cmd: Any, body: Any) -> None:
        credentials = (self.wecom.aibot_id, self.wecom.aibot_secret)
        if (
            cmd != "aibot_subscribe"
            or not isinstance(body, dict)
            or (body.get("bot_id"), body.get("secret")) != credentials
        ):
            await self._ack(conn, req_id, SUBSCRIBE_REFUSED, "invalid bot_id or secret (fake)")
            await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthorized")
            return
        older = self.connections
        conn.subscribed = True
        await self._ack(conn, req_id, 0)
        for old in older:  # one connection per bot: the newest wins
            # In a task: closing waits for the old client, which must not hold up this one.
            self._background(self._replace(old))
        self.subscriptions += 1

    async def _command(self, conn: AibotWsConnection, req_id: Any, cmd: str, body: Any) -> None:
        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "errcode":
            await self._ack(conn, req_id, fault.errcode, "injected fault")
            return
        code = self._act(conn, req_id, cmd, body)
        if fault is None:
            await self._ack(conn, req_id, code)
        elif fault.kind == "delay":
            self._background(self._ack_later(conn, req_id, code, fault.seconds))

    def _act(self, conn: AibotWsConnection, req_id: Any, cmd: str, body: Any) -> int:
        """What the platform does with one command; its errcode."""
        if not isinstance(body, dict):
            return 40035
        if cmd == "aibot_send_msg":
            chatid = body.get("chatid")
            if not isinstance(chatid, str) or not chatid:
                return 40035
            # (fake) the robot limit, 20/min per chat, counted for failures too (§3).
            if not self.wecom.limiter.hit(f"aibot:{chatid}"):
                return 45009
            return self._show("aibot_send_msg", chatid, body, ("markdown", "template_card"))
        if cmd in ("aibot_respond_welcome_msg", "aibot_respond_msg", "aibot_respond_update_msg"):
            pushed = conn.pushed.get(req_id) if isinstance(req_id, str) else None
            if pushed is None:
                return UNKNOWN_REQ_ID
            if cmd == "aibot_respond_welcome_msg":
                if pushed.kind != "event":
                    return UNKNOWN_REQ_ID
                if self.wecom.clock() > pushed.at + WELCOME_WINDOW:
                    return REPLY_EXPIRED
                return self._show(cmd, pushed.target, body, ("text", "template_card"))
            return self._show(cmd, pushed.target, body, None)
        return UNKNOWN_CMD

    def _show(
        self, endpoint: str, target: str, body: dict[str, Any], msgtypes: tuple[str, ...] | None
    ) -> int:
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or (msgtypes is not None and msgtype not in msgtypes):
            return 40008
        if (code := content_error(msgtype, body.get(msgtype), AIBOT_LIMITS)) is not None:
            return code
        self.wecom.record(endpoint, target, msgtype, body, text_of(msgtype, body))
        return 0

    async def _ack(
        self, conn: AibotWsConnection, req_id: Any, errcode: int, errmsg: str = ""
    ) -> None:
        if conn.ws.closed:
            return
        self.timeline.append(("out", "ack", str(req_id)))
        errmsg = errmsg or ("ok" if errcode == 0 else ERRMSG.get(errcode, "error"))
        ack = {"headers": {"req_id": req_id}, "errcode": errcode, "errmsg": errmsg}
        await conn.ws.send_json(ack, dumps=_dumps)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _replace(self, conn: AibotWsConnection) -> None:
        await self.push_event("disconnected_event", connection=conn)
        await conn.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"replaced")

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _ack_later(
        self, conn: AibotWsConnection, req_id: Any, errcode: int, seconds: float
    ) -> None:
        await asyncio.sleep(seconds)
        await self._ack(conn, req_id, errcode)

    async def _close_all(self, _app: web.Application) -> None:
        for task in list(self._late):
            task.cancel()
        for conn in list(self._connections):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
