"""WeCom 智能机器人 (AI bot) callbacks in: encrypted JSON over HTTP (PLATFORMS.md §3).

The AI bot is how the bot hears WeCom groups: members @ it, and each message carries a
``response_url`` for one later reply. Its receiveid is the empty string (an internal bot).
Media URLs in these payloads live five minutes and are encrypted with the same EncodingAESKey,
so whoever keeps evidence must fetch and decrypt it promptly.

The plaintext JSON is the same whether it arrives here or over the long connection
(``wecom_aibot_ws``), so both read it with ``parse_aibot_message`` and ``aibot_event``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from bot.adapters.base import HttpReply, Parsed, Rejected
from bot.adapters.wecom_crypto import WeComCrypto
from bot.adapters.wecom_inbound import WeComCallback
from bot.messages import ChatRef, Inbound, Media, ReplyRoute

__all__ = [
    "RESPONSE_URL_TTL",
    "WELCOME",
    "WELCOME_BODY",
    "WeComBotPayloadError",
    "WeComBotWebhook",
    "aibot_event",
    "parse_aibot_message",
]

log = logging.getLogger(__name__)
MediaKind = Literal["image", "file", "video"]

WELCOME = "您好，我是督办助手，发送“帮助”查看我能做什么。"
WELCOME_BODY: Mapping[str, Any] = {"msgtype": "text", "text": {"content": WELCOME}}
# Doc 101138: a response_url may be called once, within one hour.
RESPONSE_URL_TTL = timedelta(hours=1)
# In groups WeCom starts the content with "@<bot name>" and a blank (often U+2005). The name is
# not in the payload, so the first @-word goes; a name with spaces leaves a word behind, which
# the command parser then reports as unknown rather than doing something else.
_LEADING_MENTION = re.compile(r"\A\s*@\S+(?:\s+|$)")


class WeComBotPayloadError(ValueError):
    """A message lacking a required field or holding one of the wrong shape.

    The text names the field, never its value: payloads carry names and chat content.
    """


class WeComBotWebhook(WeComCallback):
    """The AI bot's callback URL (/hooks/wecom-bot)."""

    path = "wecom-bot"

    def __init__(self, token: str, aes_key: str, window_seconds: int) -> None:
        super().__init__(WeComCrypto(token, aes_key, ""), window_seconds)

    def receive(self, body: bytes, stamp: tuple[str, str, str], now: datetime) -> Parsed:
        payload = self._crypto.decrypt_json_body(body, *stamp)
        eventtype = aibot_event(payload)
        if eventtype is not None:
            return self._event(eventtype, nonce=stamp[2], now=now)
        try:
            message = parse_aibot_message(payload, now)
        except WeComBotPayloadError as e:
            raise Rejected(400, str(e)) from None
        return Parsed() if message is None else Parsed((message,))

    def _event(self, eventtype: str, nonce: str, now: datetime) -> Parsed:
        if eventtype != "enter_chat":
            return Parsed()
        # A user opening the bot's one-to-one chat for the first time today: the only moment a
        # passive text reply is allowed, and one that helps people who do not know the commands.
        welcome = json.dumps(WELCOME_BODY, ensure_ascii=False)
        reply = self._crypto.encrypted_json_reply(welcome, nonce, str(int(now.timestamp())))
        return Parsed(
            reply=HttpReply(body=json.dumps(reply).encode(), content_type="application/json")
        )


def aibot_event(payload: Mapping[str, Any], *, framed_as_event: bool = False) -> str | None:
    """The ``event.eventtype`` of an event callback ("" when it names none), logged; None
    when the payload is a message.

    ``framed_as_event``: the transport already says it is an event (the long connection's
    ``aibot_event_callback``), so a body without ``msgtype: "event"`` still counts as one.
    """
    if not framed_as_event and _field(payload, "msgtype") != "event":
        return None
    eventtype = _field(payload, "event", "eventtype")
    log.info("wecom ai bot event %s from %s", eventtype or "?", _field(payload, "from", "userid"))
    return eventtype


def parse_aibot_message(payload: Mapping[str, Any], now: datetime) -> Inbound | None:
    """One message callback as an ``Inbound``; None (logged) for a type the bot does not read.

    Raises ``WeComBotPayloadError`` for a message it should read but cannot.
    """
    msgtype = _field(payload, "msgtype")
    content = _content(msgtype, payload)
    user = _field(payload, "from", "userid")
    if content is None:
        log.info("wecom ai bot message of type %s from %s ignored", msgtype or "?", user)
        return None
    msgid = _field(payload, "msgid")
    if not msgid or not user:
        raise WeComBotPayloadError(f"{msgtype} message without msgid or from.userid")
    chat = _chat(payload, user)
    text, media = content
    if chat.is_group:
        text = _LEADING_MENTION.sub("", text, count=1)
    return Inbound(
        platform="wecom",
        event_id=msgid,
        chat=chat,
        sender_id=user,
        sender_name="",  # callbacks carry no names; the directory maps ids to people
        text=text.strip(),
        received_at=now,
        # One source for both transports: replies and proactive posts take the same channels.
        source="wecom_aibot",
        media=media,
        reply_route=_reply_route(payload, now),
    )


def _field(obj: Any, *path: str) -> str:
    """A string (or integer) value at ``path`` in nested JSON objects; "" when absent."""
    for key in path:
        if not isinstance(obj, Mapping):
            return ""
        obj = obj.get(key)
    if isinstance(obj, str):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj)
    return ""


def _chat(payload: Mapping[str, Any], user: str) -> ChatRef:
    chattype = payload.get("chattype")
    if chattype == "single":
        return ChatRef("wecom", user, is_group=False)
    if chattype == "group":
        chatid = _field(payload, "chatid")
        if not chatid:
            raise WeComBotPayloadError("group message without chatid")
        return ChatRef("wecom", chatid, is_group=True)
    raise WeComBotPayloadError("chattype is neither single nor group")


def _media(kind: MediaKind, payload: Mapping[str, Any], msgtype: str) -> tuple[Media, ...]:
    url = _field(payload, msgtype, "url")
    if not url:
        raise WeComBotPayloadError(f"{msgtype} message without url")
    return (Media(kind, url),)


def _content(msgtype: str, payload: Mapping[str, Any]) -> tuple[str, tuple[Media, ...]] | None:
    """Text and media of one message, or None for a type the bot does not read."""
    if msgtype == "text":
        return _field(payload, "text", "content"), ()
    if msgtype == "voice":  # WeCom hands over the speech already transcribed
        return _field(payload, "voice", "content"), ()
    if msgtype in ("image", "file", "video"):
        return "", _media(cast(MediaKind, msgtype), payload, msgtype)
    if msgtype != "mixed":
        return None
    mixed = payload.get("mixed")
    items = mixed.get("msg_item") if isinstance(mixed, Mapping) else None
    if not isinstance(items, list):
        raise WeComBotPayloadError("mixed message without msg_item list")
    texts: list[str] = []
    media: list[Media] = []
    for item in items:
        kind = _field(item, "msgtype")
        if kind == "text":
            texts.append(_field(item, "text", "content"))
        elif kind == "image":
            media += _media("image", item, "image")
    return "\n".join(texts), tuple(media)


def _reply_route(payload: Mapping[str, Any], now: datetime) -> ReplyRoute | None:
    url = _field(payload, "response_url")
    if not url:
        return None
    # The URL is minted when the message is sent; counting from then (as the callback says,
    # clamped to the last hour) errs on the side of calling it expired. Integer arithmetic,
    # because a float conversion of an absurd value would raise.
    age = 0
    created = payload.get("create_time")
    if isinstance(created, int) and not isinstance(created, bool):
        age = min(max(int(now.timestamp()) - created, 0), int(RESPONSE_URL_TTL.total_seconds()))
    return ReplyRoute(
        "wecom_response_url", url, expires_at=now - timedelta(seconds=age) + RESPONSE_URL_TTL
    )
