"""Sending to WeCom: group-robot webhooks, the self-built app, and the AI bot (PLATFORMS.md §2–3).

Mentions. Only robot ``text`` messages can notify people (``mentioned_list`` /
``mentioned_mobile_list``); Markdown cannot. So a Markdown post to a robot webhook with
mentions goes out as its Markdown parts and then one short text, ``请以上同志关注``, carrying
the mention lists; a ``format="text"`` post carries them on its last part. App messages and
the AI bot have no mention field (whether ``<@userid>`` works there is unconfirmed), so the
names are written at the end as plain ``@张三`` text, notifying nobody.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp

from bot.adapters.base import DeliveryError, Destination
from bot.adapters.markdown import MENTION_NOTE, append_line, plain_mentions
from bot.adapters.outbound import DEFAULT_TIMEOUT, Step, check_errcode, deliver, request_json, tail
from bot.adapters.split import split_message
from bot.adapters.tokens import TokenCache
from bot.adapters.wecom_media import check_file, upload_file
from bot.clock import Clock
from bot.messages import Mention, Outbound, OutboundFile

__all__ = [
    "BotTransport",
    "HttpBotTransport",
    "WeComAppSender",
    "WeComBotSender",
    "WeComWebhookSender",
]

log = logging.getLogger(__name__)

ROBOT_MARKDOWN_LIMIT = 4096
TEXT_LIMIT = 2048
APP_LIMIT = 2048  # app text and markdown (page 90236, second-hand)
AIBOT_LIMIT = 20480  # the documented stream-reply limit; none is published for aibot_send_msg
IMAGE_MAX = 2 << 20
RETRYABLE = frozenset({-1, 45009, 45033})  # system busy, frequency and concurrency limits
TOKEN_ERRORS = frozenset({40001, 40014, 41001, 42001})


def _check(body: Any, what: str) -> None:
    check_errcode(body, what, RETRYABLE)


def _left_out(destination: Destination, message: Outbound) -> None:
    """Images and files go only through group robots; elsewhere the text goes alone."""
    for what, item in (("image", message.image), ("file", message.file)):
        if item is not None:
            log.info("%s %s: %s left out", destination.channel_type, destination.chat_id, what)


def _parts(message: Outbound, limit: int, named: tuple[Mention, ...] | None = None) -> list[str]:
    """The message's text in parts, ending with the names of ``named`` (default: everyone
    mentioned) for channels where writing a name is all one can do."""
    names = plain_mentions(message.mentions if named is None else named)
    body = append_line(message.body, names)
    return split_message(body, limit, numbered=True, markdown=message.format == "markdown")


class WeComWebhookSender:
    """Group-robot webhooks (消息推送); the destination's ``secrets["key"]`` names the robot.

    A message's parts: its text, the mention note, the image, then its file (uploaded with
    ``upload_media`` and posted as a ``file`` message), so a resend skips what was shown.
    """

    channel_types = ("wecom_webhook",)

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        clock: Clock,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http, self._base, self._clock = http, api_base.rstrip("/"), clock
        self._timeout = timeout

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        key = destination.secrets.get("key", "")
        label = f"wecom_webhook {destination.chat_id} key {tail(key)}"
        await deliver(lambda: self._steps(key, message), skip_parts=skip_parts, label=label)

    def _steps(self, key: str, message: Outbound) -> list[Step]:
        if not key:
            raise DeliveryError("wecom webhook: no key configured", retryable=False, code="config")
        if message.image is not None and len(message.image) > IMAGE_MAX:
            raise DeliveryError("wecom webhook: image over 2 MB", retryable=False, code="45002")
        users = [m.user_id for m in message.mentions if m.user_id]
        mobiles = [m.mobile for m in message.mentions if m.mobile and not m.user_id]
        unreachable = tuple(m for m in message.mentions if not (m.user_id or m.mobile))
        lists: dict[str, Any] = {}
        if users:
            lists["mentioned_list"] = users
        if mobiles:
            lists["mentioned_mobile_list"] = mobiles
        payloads: list[dict[str, Any]] = []
        if message.format == "text":
            parts = _parts(message, TEXT_LIMIT, unreachable)
            payloads = [{"msgtype": "text", "text": {"content": p}} for p in parts]
            if lists and payloads:
                payloads[-1]["text"].update(lists)
        else:
            # Names nobody can be notified of go in the trailing text if there is one.
            parts = _parts(message, ROBOT_MARKDOWN_LIMIT, () if lists else unreachable)
            payloads = [{"msgtype": "markdown", "markdown": {"content": p}} for p in parts]
        if lists and not (message.format == "text" and payloads):
            names = plain_mentions(unreachable)
            note = f"{MENTION_NOTE} {names}" if names else MENTION_NOTE
            payloads.append({"msgtype": "text", "text": {"content": note, **lists}})
        if message.image is not None:
            raw = message.image
            image = {
                "base64": base64.b64encode(raw).decode("ascii"),
                "md5": hashlib.md5(raw, usedforsecurity=False).hexdigest(),
            }
            payloads.append({"msgtype": "image", "image": image})
        steps: list[Step] = [partial(self._post, key, p) for p in payloads]
        if message.file is not None:
            check_file(message.file)  # before the text goes: a file too big never will
            steps.append(partial(self._post_file, key, message.file))
        if not steps:
            raise DeliveryError("wecom webhook: empty message", retryable=False, code="empty")
        return steps

    async def _post(self, key: str, payload: dict[str, Any]) -> None:
        url = f"{self._base}/cgi-bin/webhook/send?{urlencode({'key': key})}"
        what = "wecom webhook"
        reply = await request_json(
            self._http, "POST", url, what=what, seconds=self._timeout, payload=payload
        )
        _check(reply.body, what)

    async def _post_file(self, key: str, file: OutboundFile) -> None:
        # Upload and post are one part: a resend uploads again rather than trusting a
        # media_id from an earlier attempt.
        media_id = await upload_file(self._http, self._base, key, file, retryable=RETRYABLE)
        await self._post(key, {"msgtype": "file", "file": {"media_id": media_id}})


class WeComAppSender:
    """The self-built app: ``wecom_appchat`` (chat_id: the appchat chatid) and
    ``wecom_app_user`` (chat_id: a userid; one-to-one replies).

    Images and files are not sent (app media messages need an upload first); the text still is.
    """

    channel_types = ("wecom_appchat", "wecom_app_user")

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        clock: Clock,
        corp_id: str,
        secret: str,
        agent_id: int,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http, self._base = http, api_base.rstrip("/")
        self._corp_id, self._secret, self._agent_id = corp_id, secret, agent_id
        self._timeout = timeout
        self.tokens = TokenCache(self._fetch_token, clock)

    def __repr__(self) -> str:
        return f"WeComAppSender(corp={self._corp_id}, agent={self._agent_id})"

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        label = f"{destination.channel_type} {destination.chat_id}"
        await deliver(lambda: self._steps(destination, message), skip_parts=skip_parts, label=label)

    def _steps(self, destination: Destination, message: Outbound) -> list[Step]:
        _left_out(destination, message)
        msgtype = message.format
        parts = _parts(message, APP_LIMIT)
        if not parts:
            raise DeliveryError("wecom app: empty message", retryable=False, code="empty")
        target: dict[str, Any]
        if destination.channel_type == "wecom_appchat":
            path, target = "/cgi-bin/appchat/send", {"chatid": destination.chat_id}
        else:
            path = "/cgi-bin/message/send"
            target = {"touser": destination.chat_id, "agentid": self._agent_id}
        return [
            partial(self._call, path, {**target, "msgtype": msgtype, msgtype: {"content": p}})
            for p in parts
        ]

    async def _fetch_token(self) -> tuple[str, float]:
        query = urlencode({"corpid": self._corp_id, "corpsecret": self._secret})
        what = "wecom gettoken"
        url = f"{self._base}/cgi-bin/gettoken?{query}"
        reply = await request_json(self._http, "GET", url, what=what, seconds=self._timeout)
        _check(reply.body, what)  # 40001 here is a wrong secret: permanent
        try:
            return str(reply.body["access_token"]), float(reply.body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise DeliveryError(f"{what}: no token", retryable=True, code="bad_reply") from None

    async def _call(self, path: str, payload: dict[str, Any]) -> None:
        what = f"wecom {path.rsplit('/', 2)[-2]}/send"
        for attempt in (1, 2):
            token = await self.tokens.get()
            url = f"{self._base}{path}?{urlencode({'access_token': token})}"
            reply = await request_json(
                self._http, "POST", url, what=what, seconds=self._timeout, payload=payload
            )
            code = reply.body.get("errcode") if isinstance(reply.body, dict) else None
            if code in TOKEN_ERRORS:
                self.tokens.invalidate(token)
                if attempt == 1:
                    continue
                # A token refused right after it was issued: WeCom's hiccup, try later.
                raise DeliveryError(f"{what}: token refused", retryable=True, code=str(code))
            _check(reply.body, what)
            if payload.get("touser") and reply.body.get("invaliduser"):
                raise DeliveryError(f"{what}: unknown user", retryable=False, code="invaliduser")
            return


class BotTransport(Protocol):
    """How a proactive AI-bot message travels: ``aibot_send_msg`` on the long connection in
    production; ``HttpBotTransport`` for the fake's HTTP stand-in."""

    async def send_msg(self, chatid: str, body: dict[str, Any]) -> None: ...


class HttpBotTransport:
    """``POST {api_base}/aibot/send?bot_id=&secret=``: the test fake's stand-in for the
    WebSocket command ``aibot_send_msg``; it answers like that command's ack."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        bot_id: str,
        secret: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._http, self._base, self._timeout = http, api_base.rstrip("/"), timeout
        self._bot_id, self._secret = bot_id, secret

    def __repr__(self) -> str:
        return f"HttpBotTransport(bot={self._bot_id})"

    async def send_msg(self, chatid: str, body: dict[str, Any]) -> None:
        query = urlencode({"bot_id": self._bot_id, "secret": self._secret})
        url, what = f"{self._base}/aibot/send?{query}", "wecom aibot send"
        reply = await request_json(
            self._http,
            "POST",
            url,
            what=what,
            seconds=self._timeout,
            payload={"chatid": chatid, **body},
        )
        _check(reply.body, what)


class WeComBotSender:
    """The AI bot (智能机器人): ``wecom_aibot`` posts proactively to chat_id (a chatid) through
    ``transport``; ``wecom_response_url`` answers one message at ``destination.url``.

    A response_url takes a single message, so a reply longer than one part sends its first
    part there and the rest proactively to ``destination.chat_id``. Images and files are left
    out: the bot posts Markdown only.

    Without the long connection (callbacks over HTTP only) there is no proactive channel: the
    bot answers at the response_url, and a reply too long for one message fails after its
    first part, saying what to configure.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        transport: BotTransport | None,
        clock: Clock,
        timeout: float = DEFAULT_TIMEOUT,
        markdown_limit: int = AIBOT_LIMIT,
    ) -> None:
        self._http, self._transport, self._clock = http, transport, clock
        self._timeout, self._limit = timeout, markdown_limit
        self.channel_types: tuple[str, ...] = (
            ("wecom_aibot", "wecom_response_url") if transport else ("wecom_response_url",)
        )

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        label = f"{destination.channel_type} {destination.chat_id}"
        await deliver(lambda: self._steps(destination, message), skip_parts=skip_parts, label=label)

    def _steps(self, destination: Destination, message: Outbound) -> list[Step]:
        _left_out(destination, message)
        parts = _parts(message, self._limit)
        if not parts:
            raise DeliveryError("wecom aibot: empty message", retryable=False, code="empty")
        bodies = [{"msgtype": "markdown", "markdown": {"content": p}} for p in parts]
        steps: list[Step] = [partial(self._proactive, destination.chat_id, b) for b in bodies]
        if destination.channel_type == "wecom_response_url":
            if not destination.url:
                raise DeliveryError("wecom response_url missing", retryable=False, code="expired")
            steps[0] = partial(self._respond, destination.url, bodies[0])
        return steps

    async def _proactive(self, chat_id: str, body: dict[str, Any]) -> None:
        if self._transport is None:
            raise DeliveryError(
                "wecom aibot: posting without a response_url needs the long connection "
                "(DUBAN_WECOM_BOT_ID and DUBAN_WECOM_BOT_SECRET)",
                retryable=False,
                code="config",
            )
        await self._transport.send_msg(chat_id, body)

    async def _respond(self, url: str, body: dict[str, Any]) -> None:
        what = "wecom response_url"
        reply = await request_json(
            self._http, "POST", url, what=what, seconds=self._timeout, payload=body
        )
        _check(reply.body, what)
