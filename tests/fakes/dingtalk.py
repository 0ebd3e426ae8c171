"""Fake DingTalk (钉钉): OpenAPI token and robot sends, custom-robot webhooks, sessionWebhooks,
Stream mode (see ``dingtalk_stream``), and signed HTTP-mode callbacks for the bot.

Written to PLATFORMS.md §4–7. OpenAPI errors are ``{code, message, requestid}`` with HTTP
4xx; webhook errors are ``{errcode, errmsg}`` with HTTP 200. Codes marked "(fake)" are this
fake's choice where the real one is unconfirmed; assert on them through the constants.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.dingtalk_inbound import DingTalkInbound, webhook_sign
from tests.fakes.dingtalk_stream import DingTalkStream
from tests.fakes.dingtalk_webhook import body_error, keyword_text, text_of
from tests.fakes.server import Clock, FakeServer, RollingWindow, TokenStore, read_json, utf8_len

TOKEN_NOT_EXIST = 300001
SIGN_FAILED = 310000  # errmsg tells which: "sign not match", "invalid timestamp", keywords
SEND_TOO_FAST = 130101
BAD_BODY = 40035  # (fake) for a body that is not JSON or lacks fields ("缺少参数 json")
MESSAGE_TOO_LONG = 460101  # (fake) code; errmsg as seen in a client library
SESSION_EXPIRED = 300001  # (fake) an expired sessionWebhook; errmsg "session expired"
GROUP_NOT_FOUND = "invalidParameter.openConversationId.notFound"  # (fake)

WEBHOOK_MAX_BYTES = 20000
MSG_PARAM_MAX_BYTES = 15000
SIGN_WINDOW_MS = 3_600_000
# Required msgParam fields per msgKey (robot-message-type page, [D8]).
MSG_KEYS: dict[str, tuple[str, ...]] = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleImageMsg": ("photoURL",),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
    **{f"sampleActionCard{n}": ("title", "text") for n in range(2, 7)},
    "sampleAudio": ("mediaId", "duration"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleVideo": ("duration", "videoMediaId", "videoType", "picMediaId"),
}


def api_error(status: int, code: str, message: str) -> web.Response:
    body = {"code": code, "message": message, "requestid": secrets.token_hex(8)}
    return web.json_response(body, status=status)


def robot_error(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


@dataclass(frozen=True)
class CustomRobot:
    secret: str | None
    keywords: tuple[str, ...]


class FakeDingTalk(DingTalkInbound, DingTalkStream, FakeServer):
    """One enterprise-internal app with its robot, plus custom robots registered per test.

    Groups the robot is in must be registered (``add_group``), as must custom robots
    (``add_robot``); ``add_users`` is optional (without it any staff id is valid).
    ``clock`` is epoch seconds: signatures and session expiry are epoch milliseconds.
    """

    def __init__(
        self,
        *,
        app_key: str = "ding-fake-app-key",
        app_secret: str = "ding-fake-app-secret",
        robot_code: str | None = None,
        corp_id: str = "ding-fake-corp",
        chatbot_user_id: str = "$:LWCP_v1:$fake-bot",
        clock: Clock = time.time,
        rate_limit: int = 20,
        rate_window: float = 60.0,
        rate_block: float = 0.0,
        session_ttl: float = 5400.0,
        ticket_ttl: float = 90.0,
    ) -> None:
        FakeServer.__init__(self, clock)
        self.app_key, self.app_secret = app_key, app_secret
        self.robot_code = robot_code or app_key  # internal robots' robotCode is the appKey
        self.corp_id, self.chatbot_user_id, self.session_ttl = corp_id, chatbot_user_id, session_ttl
        self.tokens = TokenStore(clock)
        self.limiter = RollingWindow(rate_limit, rate_window, clock, block=rate_block)
        self.robots: dict[str, CustomRobot] = {}
        self.groups: set[str] = set()
        self.users: set[str] = set()
        self._sessions: dict[str, tuple[str, float]] = {}  # session -> (conversation, expiry)
        DingTalkStream.__init__(self, ticket_ttl)
        r = self.app.router
        r.add_post("/v1.0/oauth2/accessToken", self._access_token)
        r.add_post("/v1.0/robot/groupMessages/send", self._group_send)
        r.add_post("/v1.0/robot/oToMessages/batchSend", self._oto_send)
        r.add_post("/robot/send", self._robot_send)
        r.add_post("/robot/sendBySession", self._session_send)

    def add_robot(
        self, access_token: str, *, secret: str | None = None, keywords: tuple[str, ...] = ()
    ) -> None:
        """A custom robot; ``secret`` is its ``SEC…`` signing secret."""
        self.robots[access_token] = CustomRobot(secret, tuple(keywords))

    def webhook_url(self, access_token: str) -> str:
        return self.url(f"/robot/send?access_token={access_token}")

    def add_group(self, open_conversation_id: str) -> None:
        self.groups.add(open_conversation_id)

    def add_users(self, *staff_ids: str) -> None:
        self.users.update(staff_ids)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def invalidate_tokens(self) -> None:
        self.tokens.invalidate()

    def expire_tokens(self) -> None:
        self.tokens.expire()

    def error_response(
        self, request: web.Request, status: int | None, errcode: int | str, errmsg: str
    ) -> web.Response:
        if isinstance(errcode, str):
            return api_error(status or 400, errcode, errmsg)
        response = robot_error(errcode, errmsg)
        response.set_status(status or 200)
        return response

    # --- OpenAPI (§7) ----------------------------------------------------------------------

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        creds = (body.get("appKey"), body.get("appSecret")) if isinstance(body, dict) else None
        if creds != (self.app_key, self.app_secret):
            # (fake) code for bad credentials
            return api_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
        return web.json_response({"accessToken": self.tokens.issue(), "expireIn": 7200})

    async def _openapi_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """Token and robotCode checks shared by the robot send APIs."""
        state = self.tokens.check(request.headers.get("x-acs-dingtalk-access-token"))
        if state != "ok":
            return api_error(401, "InvalidAuthentication", f"access token {state}")
        body = await read_json(request)
        if not isinstance(body, dict):
            return api_error(400, "invalidParameter", "body is not a JSON object")
        if body.get("robotCode") != self.robot_code:
            return api_error(400, "invalidParameter.robotCode.auth", "robotCode无效")
        return body

    def _msg_param_error(self, body: dict[str, Any]) -> web.Response | None:
        key, param = body.get("msgKey"), body.get("msgParam")
        if not isinstance(key, str) or key not in MSG_KEYS:
            return api_error(400, "invalidParameter.msgKey", f"unknown msgKey {key!r}")
        if not isinstance(param, str) or utf8_len(param) > MSG_PARAM_MAX_BYTES:
            return api_error(400, "invalidParameter.msgParam", "msgParam must be ≤15000 bytes")
        try:
            fields = json.loads(param)
        except ValueError:
            fields = None
        if not isinstance(fields, dict) or any(not fields.get(f) for f in MSG_KEYS[key]):
            return api_error(400, "invalidParameter.msgParam", f"msgParam lacks {MSG_KEYS[key]}")
        return None

    async def _group_send(self, request: web.Request) -> web.Response:
        body = await self._openapi_body(request)
        if isinstance(body, web.Response):
            return body
        conversation = body.get("openConversationId")
        if not isinstance(conversation, str) or conversation not in self.groups:
            return api_error(400, GROUP_NOT_FOUND, "robot is not in this group")
        if (error := self._msg_param_error(body)) is not None:
            return error
        self.record("groupMessages/send", conversation, body["msgKey"], body, _param_text(body))
        return web.json_response({"processQueryKey": secrets.token_urlsafe(16)})

    async def _oto_send(self, request: web.Request) -> web.Response:
        body = await self._openapi_body(request)
        if isinstance(body, web.Response):
            return body
        user_ids = body.get("userIds")
        if not isinstance(user_ids, list) or not 1 <= len(user_ids) <= 20:
            return api_error(400, "invalidParameter.userIds", "userIds must hold 1 to 20 ids")
        if (error := self._msg_param_error(body)) is not None:
            return error
        invalid = [u for u in user_ids if self.users and u not in self.users]
        for user in user_ids:
            if user not in invalid:
                self.record("oToMessages/batchSend", user, body["msgKey"], body, _param_text(body))
        key = secrets.token_urlsafe(16)
        return web.json_response(
            {"processQueryKey": key, "invalidStaffIdList": invalid, "flowControlledStaffIdList": []}
        )

    # --- custom robot and sessionWebhook (§4, §5) ------------------------------------------

    def _sign_error(self, timestamp: str | None, sign: str | None, secret: str) -> str | None:
        if not timestamp or not timestamp.isascii() or not timestamp.isdigit():
            return "invalid timestamp"
        if abs(self.now_ms() - int(timestamp)) > SIGN_WINDOW_MS:
            return "invalid timestamp"
        expected = webhook_sign(timestamp, secret).encode()
        if not sign or not hmac.compare_digest(expected, sign.encode("utf-8")):
            return "sign not match"
        return None

    async def _robot_send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        robot = self.robots.get(token)
        if robot is None:
            return robot_error(TOKEN_NOT_EXIST, "token is not exist")
        # Counted before any check, like WeCom's: failed sends use up the minute too.
        if not self.limiter.hit(f"robot:{token}"):
            return robot_error(SEND_TOO_FAST, "send too fast, exceed 20 times per minute")
        if robot.secret:
            q = request.query
            if reason := self._sign_error(q.get("timestamp"), q.get("sign"), robot.secret):
                return robot_error(SIGN_FAILED, reason)
        body = await self._webhook_body(request)
        if isinstance(body, web.Response):
            return body
        if robot.keywords and not any(k in keyword_text(body) for k in robot.keywords):
            return robot_error(SIGN_FAILED, "keywords not in content")
        self.record("robot/send", token, body["msgtype"], body, text_of(body))
        return robot_error(0, "ok")

    def session_webhook(self, conversation_id: str, ttl: float | None = None) -> tuple[str, int]:
        """A reply URL for one conversation: ``(url, sessionWebhookExpiredTime_ms)``."""
        session = secrets.token_urlsafe(16)
        expiry = self.clock() + (self.session_ttl if ttl is None else ttl)
        self._sessions[session] = (conversation_id, expiry)
        return self.url(f"/robot/sendBySession?session={session}"), int(expiry * 1000)

    async def _session_send(self, request: web.Request) -> web.Response:
        entry = self._sessions.get(request.query.get("session", ""))
        if entry is None:
            return robot_error(TOKEN_NOT_EXIST, "token is not exist")
        conversation, expiry = entry
        if self.clock() >= expiry:
            return robot_error(SESSION_EXPIRED, "session expired")
        if not self.limiter.hit(f"session:{conversation}"):
            return robot_error(SEND_TOO_FAST, "send too fast, exceed 20 times per minute")
        body = await self._webhook_body(request)
        if isinstance(body, web.Response):
            return body
        self.record("sendBySession", conversation, body["msgtype"], body, text_of(body))
        return robot_error(0, "ok")

    async def _webhook_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The validated message body, or the error answer."""
        raw = await request.read()
        if len(raw) > WEBHOOK_MAX_BYTES:
            return robot_error(MESSAGE_TOO_LONG, "message too long, exceed 20000 bytes")
        body = await read_json(request)
        if not isinstance(body, dict):
            return robot_error(BAD_BODY, "缺少参数 json")
        if (problem := body_error(body)) is not None:
            return robot_error(BAD_BODY, problem)
        return body


def _param_text(body: dict[str, Any]) -> str | None:
    fields = json.loads(body["msgParam"])
    value = fields.get("content") if body["msgKey"] == "sampleText" else fields.get("text")
    return value if isinstance(value, str) else None
