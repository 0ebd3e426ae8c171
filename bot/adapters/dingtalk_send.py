"""Sending to DingTalk: the OpenAPI robot, custom-robot webhooks and sessionWebhooks (§4, §5, §7).

Mentions. Custom robots and sessionWebhooks notify the people listed in ``at``
(``atUserIds``/``atMobiles``), and each must also be written as ``@<userid>``/``@<mobile>`` in
the text: that line ends the message's last part, which alone carries ``at``. The OpenAPI
robot send has no ``at`` at all, so there the names are written as plain ``@张三`` text and
nobody is notified.

Images need a URL on DingTalk; ``publish_image`` (bytes → URL) provides it. Without one the
image is left out, with a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp

from bot.adapters.base import DeliveryError, Destination
from bot.adapters.dingtalk_sign import signed_webhook_url
from bot.adapters.markdown import append_line, plain_mentions, title_of
from bot.adapters.outbound import DEFAULT_TIMEOUT, Step, check_errcode, deliver, request_json, tail
from bot.adapters.split import split_to_fit
from bot.adapters.tokens import TokenCache
from bot.clock import Clock
from bot.messages import Mention, Outbound

__all__ = [
    "DingTalkOpenApiSender",
    "DingTalkSessionSender",
    "DingTalkWebhookSender",
    "ImagePublisher",
]

log = logging.getLogger(__name__)

ImagePublisher = Callable[[bytes], Awaitable[str]]
MSG_PARAM_MAX = 15000
WEBHOOK_BODY_MAX = 20000
RETRYABLE = frozenset({-1, 130101})  # busy; "send too fast, exceed 20 times per minute"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _at_line(mentions: tuple[Mention, ...]) -> tuple[str, dict[str, Any]]:
    """The ``@…`` line written into the text, and the ``at`` object that notifies them."""
    users = [m.user_id for m in mentions if m.user_id]
    mobiles = [m.mobile for m in mentions if m.mobile and not m.user_id]
    line = " ".join(f"@{m.user_id or m.mobile or m.name}" for m in mentions)
    at: dict[str, Any] = {}
    if users:
        at["atUserIds"] = users
    if mobiles:
        at["atMobiles"] = mobiles
    return line, at


class _RobotSender:
    """Custom robots and sessionWebhooks take the same bodies and answer alike."""

    what = ""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        clock: Clock,
        timeout: float = DEFAULT_TIMEOUT,
        publish_image: ImagePublisher | None = None,
    ) -> None:
        self._http, self._clock, self._timeout = http, clock, timeout
        self._publish_image = publish_image

    def _label(self, destination: Destination) -> str:
        return f"{destination.channel_type} {destination.chat_id}"

    def _url(self, destination: Destination) -> str:
        """Where to post; raises ``DeliveryError`` when the destination lacks what it needs."""
        raise NotImplementedError

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        label = self._label(destination)

        def build() -> list[Step]:
            self._url(destination)
            return [partial(self._post, destination, item) for item in self._items(message, label)]

        await deliver(build, skip_parts=skip_parts, label=label)

    def _items(self, message: Outbound, label: str) -> list[dict[str, Any] | bytes]:
        line, at = _at_line(message.mentions)
        title = title_of(message.body, message.title)

        def wrap(part: str, with_at: bool) -> dict[str, Any]:
            if message.format == "text":
                out: dict[str, Any] = {"msgtype": "text", "text": {"content": part}}
            else:
                out = {"msgtype": "markdown", "markdown": {"title": title, "text": part}}
            return {**out, "at": at} if with_at and at else out

        parts = split_to_fit(
            append_line(message.body, line),
            WEBHOOK_BODY_MAX,
            lambda p: _size(_dumps(wrap(p, True))),
            markdown=message.format == "markdown",
        )
        items: list[dict[str, Any] | bytes] = [
            wrap(p, i == len(parts) - 1) for i, p in enumerate(parts)
        ]
        if message.image is not None:
            if self._publish_image is None:
                log.info("%s: image left out, no way to publish it", label)
            else:
                items.append(message.image)
        if not items:
            raise DeliveryError(f"{label}: empty message", retryable=False, code="empty")
        return items

    async def _post(self, destination: Destination, item: dict[str, Any] | bytes) -> None:
        if isinstance(item, bytes):
            assert self._publish_image is not None
            url = await self._publish_image(item)
            item = {"msgtype": "markdown", "markdown": {"title": "图片", "text": f"![图片]({url})"}}
        reply = await request_json(
            self._http,
            "POST",
            self._url(destination),
            what=self.what,
            seconds=self._timeout,
            payload=item,
        )
        # 310000 (sign, timestamp, keywords, IP) and 300001 (no such robot) are permanent.
        check_errcode(reply.body, self.what, RETRYABLE)


class DingTalkWebhookSender(_RobotSender):
    """Custom-robot webhooks: ``secrets["access_token"]`` and, when signing is on,
    ``secrets["secret"]`` (the ``SEC…`` string). ``api_base`` is the oapi host."""

    channel_types = ("dingtalk_webhook",)
    what = "dingtalk webhook"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        clock: Clock,
        timeout: float = DEFAULT_TIMEOUT,
        publish_image: ImagePublisher | None = None,
    ) -> None:
        super().__init__(http, clock=clock, timeout=timeout, publish_image=publish_image)
        self._base = api_base

    def _label(self, destination: Destination) -> str:
        token = tail(destination.secrets.get("access_token", ""))
        return f"dingtalk_webhook {destination.chat_id} token {token}"

    def _url(self, destination: Destination) -> str:
        token = destination.secrets.get("access_token", "")
        if not token:
            raise DeliveryError(f"{self.what}: no access_token", retryable=False, code="config")
        # Signed per request: the timestamp must be within an hour of DingTalk's clock.
        now_ms = int(self._clock.now().timestamp() * 1000)
        secret = destination.secrets.get("secret") or None
        return signed_webhook_url(self._base, token, secret, now_ms)


class DingTalkSessionSender(_RobotSender):
    """Replies through an incoming message's sessionWebhook, ``destination.url``.

    The caller decides whether the webhook is still valid (``ReplyRoute.expires_at``) and
    passes an empty url when it is not; that is refused as permanent here.
    """

    channel_types = ("dingtalk_session",)
    what = "dingtalk session webhook"

    def _url(self, destination: Destination) -> str:
        if not destination.url:
            raise DeliveryError("session webhook expired", retryable=False, code="expired")
        return destination.url


class DingTalkOpenApiSender:
    """The enterprise-internal robot through the OpenAPI: ``dingtalk_openapi`` posts to a
    group (chat_id: openConversationId), ``dingtalk_user`` to one person (chat_id: staffId)."""

    channel_types = ("dingtalk_openapi", "dingtalk_user")

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        clock: Clock,
        app_key: str,
        app_secret: str,
        robot_code: str,
        timeout: float = DEFAULT_TIMEOUT,
        publish_image: ImagePublisher | None = None,
    ) -> None:
        self._http, self._base, self._timeout = http, api_base.rstrip("/"), timeout
        self._app_key, self._app_secret, self._robot_code = app_key, app_secret, robot_code
        self._publish_image = publish_image
        self.tokens = TokenCache(self._fetch_token, clock)

    def __repr__(self) -> str:
        return f"DingTalkOpenApiSender(app={self._app_key}, robot={self._robot_code})"

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        label = f"{destination.channel_type} {destination.chat_id}"
        await deliver(
            lambda: self._steps(destination, message, label), skip_parts=skip_parts, label=label
        )

    def _steps(self, destination: Destination, message: Outbound, label: str) -> list[Step]:
        body = append_line(message.body, plain_mentions(message.mentions))
        title = title_of(message.body, message.title)
        key = "sampleText" if message.format == "text" else "sampleMarkdown"

        def wrap(part: str) -> dict[str, str]:
            return {"content": part} if key == "sampleText" else {"title": title, "text": part}

        parts = split_to_fit(
            body, MSG_PARAM_MAX, lambda p: _size(_dumps(wrap(p))), markdown=key != "sampleText"
        )
        group = destination.channel_type == "dingtalk_openapi"
        steps: list[Step] = [
            partial(self._call, group, destination.chat_id, key, _dumps(wrap(p))) for p in parts
        ]
        if message.image is not None:
            if self._publish_image is None:
                log.info("%s: image left out, no way to publish it", label)
            else:
                steps.append(partial(self._send_image, group, destination.chat_id, message.image))
        if not steps:
            raise DeliveryError(f"{label}: empty message", retryable=False, code="empty")
        return steps

    async def _fetch_token(self) -> tuple[str, float]:
        what = "dingtalk accessToken"
        reply = await request_json(
            self._http,
            "POST",
            f"{self._base}/v1.0/oauth2/accessToken",
            what=what,
            seconds=self._timeout,
            payload={"appKey": self._app_key, "appSecret": self._app_secret},
        )
        body = reply.body
        if reply.status != 200 or not isinstance(body, dict) or not body.get("accessToken"):
            code = str(body.get("code", "")) if isinstance(body, dict) else ""
            raise DeliveryError(f"{what}: HTTP {reply.status} {code}", retryable=False, code=code)
        try:
            return str(body["accessToken"]), float(body["expireIn"])
        except (KeyError, TypeError, ValueError):
            raise DeliveryError(f"{what}: no lifetime", retryable=True, code="bad_reply") from None

    async def _send_image(self, group: bool, chat_id: str, image: bytes) -> None:
        assert self._publish_image is not None
        url = await self._publish_image(image)
        await self._call(group, chat_id, "sampleImageMsg", _dumps({"photoURL": url}))

    async def _call(self, group: bool, chat_id: str, key: str, param: str) -> None:
        robot: dict[str, Any] = {"robotCode": self._robot_code, "msgKey": key, "msgParam": param}
        if group:
            path, payload = "groupMessages/send", {**robot, "openConversationId": chat_id}
        else:
            path, payload = "oToMessages/batchSend", {**robot, "userIds": [chat_id]}
        what = f"dingtalk {path}"
        for attempt in (1, 2):
            token = await self.tokens.get()
            reply = await request_json(
                self._http,
                "POST",
                f"{self._base}/v1.0/robot/{path}",
                what=what,
                seconds=self._timeout,
                payload=payload,
                headers={"x-acs-dingtalk-access-token": token},
            )
            body = reply.body if isinstance(reply.body, dict) else {}
            code = str(body.get("code", ""))
            if reply.status == 401 or code == "InvalidAuthentication":
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue
                raise DeliveryError(f"{what}: token refused", retryable=True, code=code)
            if reply.status >= 400:
                limited = "Throttling" in code or "QpsLimit" in code
                raise DeliveryError(
                    f"{what}: HTTP {reply.status} {code}", retryable=limited, code=code
                )
            if chat_id in (body.get("flowControlledStaffIdList") or []):
                raise DeliveryError(
                    f"{what}: flow controlled", retryable=True, code="flowControlled"
                )
            if chat_id in (body.get("invalidStaffIdList") or []):
                raise DeliveryError(f"{what}: unknown user", retryable=False, code="invalidStaffId")
            return
