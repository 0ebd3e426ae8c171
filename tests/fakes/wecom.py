"""Fake WeCom (企业微信): app API, group-robot webhooks, and an AI-bot send stand-in.

Written to PLATFORMS.md §2–3; error codes, limits and payload rules are in ``wecom_rules``.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import Clock, FakeServer, RollingWindow, TokenStore, read_json
from tests.fakes.wecom_inbound import WeComInbound
from tests.fakes.wecom_rules import (
    AIBOT_LIMITS,
    APP_LIMITS,
    APP_MSGTYPES,
    APPCHAT_MSGTYPES,
    CHAT_NOT_FOUND,
    MEDIA_MAX,
    MEDIA_TTL,
    RESPONSE_URL_INVALID,
    ROBOT_MSGTYPES,
    content_error,
    errcode,
    ok,
    robot_payload_error,
    text_of,
)


@dataclass
class Media:
    key: str
    type: str
    filename: str
    data: bytes
    created_at: float


class FakeWeCom(WeComInbound, FakeServer):
    """A WeCom corp with one self-built app, group robots and one AI bot.

    Robots, app chats and (optionally) users must be registered by the test, as the real
    server knows only what exists: ``add_robot(key)``, ``add_appchat(chatid)``,
    ``add_users(*ids)`` (when no users are added, any ``touser`` is accepted).
    """

    def __init__(
        self,
        *,
        corpid: str = "ww-fake-corp",
        corpsecret: str = "fake-app-secret",
        agentid: int = 1000002,
        token: str = "fake-callback-token",
        encoding_aes_key: str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        aibot_id: str = "fake-aibot",
        aibot_secret: str = "fake-aibot-secret",
        clock: Clock = time.time,
        rate_limit: int = 20,
        rate_window: float = 60.0,
    ) -> None:
        FakeServer.__init__(self, clock)
        WeComInbound.__init__(self, corpid, agentid, token, encoding_aes_key)
        self.corpsecret, self.aibot_id, self.aibot_secret = corpsecret, aibot_id, aibot_secret
        self.tokens = TokenStore(clock)
        self.limiter = RollingWindow(rate_limit, rate_window, clock)
        self.robots: set[str] = set()
        self.appchats: set[str] = set()
        self.users: set[str] = set()
        self.media: dict[str, Media] = {}
        self._response_codes: dict[str, tuple[str, float]] = {}  # code -> (chatid, expiry)
        r = self.app.router
        r.add_get("/cgi-bin/gettoken", self._gettoken)
        r.add_post("/cgi-bin/message/send", self._message_send)
        r.add_post("/cgi-bin/appchat/send", self._appchat_send)
        r.add_post("/cgi-bin/webhook/send", self._webhook_send)
        r.add_post("/cgi-bin/webhook/upload_media", self._upload_media)
        r.add_post("/aibot/send", self._aibot_send)
        r.add_post("/cgi-bin/aibot/response", self._aibot_response)

    def add_robot(self, key: str) -> None:
        self.robots.add(key)

    def webhook_url(self, key: str) -> str:
        return self.url(f"/cgi-bin/webhook/send?key={key}")

    def add_appchat(self, chatid: str) -> None:
        self.appchats.add(chatid)

    def add_users(self, *userids: str) -> None:
        self.users.update(userids)

    def invalidate_tokens(self) -> None:
        """Revoke every issued token: later calls get 40014."""
        self.tokens.invalidate()

    def expire_tokens(self) -> None:
        """Expire every issued token now: later calls get 42001."""
        self.tokens.expire()

    def error_response(
        self, request: web.Request, status: int | None, code: int | str, errmsg: str
    ) -> web.Response:
        response = errcode(int(code), errmsg)
        response.set_status(status or 200)
        return response

    # --- app API (§2) ----------------------------------------------------------------------

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corpid:
            return errcode(40013)
        if request.query.get("corpsecret") != self.corpsecret:
            return errcode(40001)
        return ok(access_token=self.tokens.issue(), expires_in=int(self.tokens.lifetime))

    def _token_error(self, request: web.Request) -> web.Response | None:
        state = self.tokens.check(request.query.get("access_token"))
        codes = {"missing": 41001, "invalid": 40014, "expired": 42001}
        return None if state == "ok" else errcode(codes[state])

    async def _message_send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body = await read_json(request)
        if not isinstance(body, dict):
            return errcode(47001)
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or msgtype not in APP_MSGTYPES:
            return errcode(40008)
        agentid = body.get("agentid")
        if type(agentid) is not int or agentid != self.agentid:  # bool is not an agentid
            return errcode(40056)
        receivers = {k: body.get(k) or "" for k in ("touser", "toparty", "totag")}
        if not all(isinstance(v, str) for v in receivers.values()) or not any(receivers.values()):
            return errcode(40035)
        if (code := content_error(msgtype, body.get(msgtype), APP_LIMITS)) is not None:
            return errcode(code)
        users = [u for u in receivers["touser"].split("|") if u]
        invalid = [u for u in users if self.users and u != "@all" and u not in self.users]
        if (
            users
            and len(invalid) == len(users)
            and not (receivers["toparty"] or receivers["totag"])
        ):
            return errcode(81013)
        self.record("message/send", receivers["touser"], msgtype, body, text_of(msgtype, body))
        return ok(
            invaliduser="|".join(invalid),
            invalidparty="",
            invalidtag="",
            unlicenseduser="",
            msgid=secrets.token_hex(16),
            response_code="",
        )

    async def _appchat_send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        body = await read_json(request)
        if not isinstance(body, dict):
            return errcode(47001)
        chatid = body.get("chatid")
        if not isinstance(chatid, str) or chatid not in self.appchats:
            return errcode(CHAT_NOT_FOUND)
        msgtype = body.get("msgtype")
        if not isinstance(msgtype, str) or msgtype not in APPCHAT_MSGTYPES:
            return errcode(40008)
        if (code := content_error(msgtype, body.get(msgtype), APP_LIMITS)) is not None:
            return errcode(code)
        self.record("appchat/send", chatid, msgtype, body, text_of(msgtype, body))
        return ok()

    # --- group robot webhook (§3) ----------------------------------------------------------

    async def _webhook_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robots:
            return errcode(93000)
        # Counted before validation: the 20/min limit includes failed sends (§3).
        if not self.limiter.hit(key):
            return errcode(45009)
        body = await read_json(request)
        if body is None:
            return errcode(47001)
        if not body:
            return errcode(44004)
        msgtype = body.get("msgtype") if isinstance(body, dict) else None
        if not isinstance(msgtype, str) or msgtype not in ROBOT_MSGTYPES:
            return errcode(40008)
        if (code := self._robot_payload_error(key, msgtype, body.get(msgtype))) is not None:
            return errcode(code)
        self.record("webhook/send", key, msgtype, body, text_of(msgtype, body))
        return ok()

    def _robot_payload_error(self, key: str, msgtype: str, payload: Any) -> int | None:
        if (code := robot_payload_error(msgtype, payload)) is not None:
            return code
        if msgtype in ("file", "voice"):
            media_id = payload.get("media_id")
            media = self.media.get(media_id) if isinstance(media_id, str) else None
            # media_id is usable only by the key that uploaded it, for three days (§3).
            if media is None or media.key != key or media.type != msgtype:
                return 40007
            if self.clock() >= media.created_at + MEDIA_TTL:
                return 40007
        return None

    async def _upload_media(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robots:
            return errcode(93000)
        media_type = request.query.get("type", "")
        if media_type not in MEDIA_MAX:
            return errcode(40005)
        form = await request.post()
        field = form.get("media")
        if not isinstance(field, web.FileField):
            return errcode(44001)
        data = field.file.read()
        if not 5 < len(data) <= MEDIA_MAX[media_type]:
            return errcode(40006)
        media_id = secrets.token_urlsafe(32)
        now = self.clock()
        # aiohttp clients percent-encode non-ASCII file names in Content-Disposition.
        filename = urllib.parse.unquote(field.filename)
        self.media[media_id] = Media(key, media_type, filename, data, now)
        return ok(type=media_type, media_id=media_id, created_at=str(int(now)))

    # --- AI bot (智能机器人) -----------------------------------------------------------------

    async def _aibot_send(self, request: web.Request) -> web.Response:
        """``POST /aibot/send?bot_id=&secret=`` with ``{chatid, msgtype:"markdown", markdown}``.

        The fake's own HTTP shape: the real ``aibot_send_msg`` is a command on the bot's
        WebSocket long connection (§3), authenticated by ``aibot_subscribe``. The answer
        mirrors that command's ack, ``{errcode, errmsg}``.
        """
        query = request.query
        if query.get("bot_id") != self.aibot_id or query.get("secret") != self.aibot_secret:
            return errcode(40001)
        body = await read_json(request)
        if not isinstance(body, dict):
            return errcode(47001)
        chatid = body.get("chatid")
        if not isinstance(chatid, str) or not chatid:
            return errcode(40035)
        return self._aibot_message("aibot/send", chatid, body)

    def response_url(self, chatid: str, ttl: float = 3600.0) -> str:
        """A single-use ``response_url`` for ``chatid`` (lifetime unconfirmed; 1 h here)."""
        code = secrets.token_urlsafe(16)
        self._response_codes[code] = (chatid, self.clock() + ttl)
        return self.url(f"/cgi-bin/aibot/response?response_code={code}")

    async def _aibot_response(self, request: web.Request) -> web.Response:
        entry = self._response_codes.pop(request.query.get("response_code", ""), None)
        if entry is None or self.clock() >= entry[1]:
            return errcode(RESPONSE_URL_INVALID)
        body = await read_json(request)
        if not isinstance(body, dict):
            return errcode(47001)
        return self._aibot_message("aibot/response", entry[0], body)

    def _aibot_message(self, endpoint: str, chatid: str, body: dict[str, Any]) -> web.Response:
        # (fake) the 20/min robot limit, applied per chat and, as for webhooks, to failures too.
        if not self.limiter.hit(f"aibot:{chatid}"):
            return errcode(45009)
        msgtype = body.get("msgtype")
        if msgtype not in ("markdown", "template_card"):
            return errcode(40008)
        if (code := content_error(msgtype, body.get(msgtype), AIBOT_LIMITS)) is not None:
            return errcode(code)
        self.record(endpoint, chatid, msgtype, body, text_of(msgtype, body))
        return ok()
