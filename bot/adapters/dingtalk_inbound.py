"""DingTalk robot messages in (PLATFORMS.md §4): the payload parser that HTTP callbacks and
Stream mode share, and the HTTP-mode webhook adapter in front of it.

Only this module reads DingTalk's message fields; everything after it sees an `Inbound`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from bot.adapters.base import HttpRequest, Parsed, Rejected
from bot.adapters.dingtalk_sign import DingTalkSignError, verify_callback
from bot.clock import SHANGHAI
from bot.messages import ChatRef, Inbound, Media, Platform, ReplyRoute

__all__ = ["DingTalkPayloadError", "DingTalkWebhook", "parse_bot_message"]

log = logging.getLogger(__name__)

# A richText segment that is nothing but one @-mention, as DingTalk writes the robot's own.
_LONE_MENTION = re.compile(r"@\S+")
_MILLIS = re.compile(r"[0-9]{1,19}")  # ASCII digits, bounded so int() stays cheap


class DingTalkPayloadError(ValueError):
    """A robot message lacking a required field or holding one of the wrong type.

    The message names the field, never its value: payloads carry names and chat content.
    """


def parse_bot_message(
    payload: Mapping[str, Any],
    now: datetime,
    *,
    source: str = "dingtalk_http",
    robot_names: Iterable[str] = (),
) -> Inbound | None:
    """One robot message as an `Inbound`; None for a message type the bot does not read.

    `robot_names` are the robot's display names, whose "@name" is removed from the text;
    DingTalk already removes it from text messages, but not from richText ones.
    `createAt` is informational: `received_at` is `now`.
    """
    msgtype = _text(payload, "msgtype")
    if msgtype not in ("text", "picture", "richText"):
        return None
    msg_id = _text(payload, "msgId")
    sender = _text(payload, "senderStaffId", required=False) or _text(payload, "senderId")
    chat = _chat(payload, sender)
    bot_id = _text(payload, "chatbotUserId", required=False)
    mentions, bot_mentioned = _mentions(payload, bot_id)
    names = {n.strip().lstrip("@") for n in robot_names if n.strip().lstrip("@")}
    # With nobody but the robot @-mentioned, a lone "@…" segment can only be the robot's own.
    lone_mention_is_bot = (bot_mentioned or payload.get("isInAtList") is True) and not mentions
    if msgtype == "text":
        text = _text(_object(payload, "text"), "content", where="text.")
        media: tuple[Media, ...] = ()
    elif msgtype == "picture":
        text, media = "", (Media("image", _download_code(_object(payload, "content"), "content.")),)
    else:
        text, media = _rich_text(_object(payload, "content"), names, lone_mention_is_bot)
    return Inbound(
        platform="dingtalk",
        event_id=msg_id,
        chat=chat,
        sender_id=sender,
        sender_name=_text(payload, "senderNick", required=False),
        text=_strip_names(text, names).strip(),
        received_at=now,
        source=source,
        media=media,
        mentions=mentions,
        reply_route=_reply_route(payload),
    )


class DingTalkWebhook:
    """The enterprise-internal robot's HTTP callback: signed headers, a JSON message body."""

    path = "dingtalk"
    platform: Platform = "dingtalk"

    def __init__(
        self, *, app_secret: str, window_seconds: int = 3600, robot_names: Iterable[str] = ()
    ) -> None:
        self._secret = app_secret
        self._window_ms = window_seconds * 1000
        self._robot_names = tuple(robot_names)

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"DingTalkWebhook(window_ms={self._window_ms})"

    def handle(self, request: HttpRequest, now: datetime) -> Parsed:
        if request.method != "POST":
            raise Rejected(405, f"{request.method} is not a DingTalk callback")
        try:
            verify_callback(
                request.headers.get("timestamp"),
                request.headers.get("sign"),
                self._secret,
                now_ms=int(now.timestamp() * 1000),
                window_ms=self._window_ms,
            )
        except DingTalkSignError as e:
            raise Rejected(403, f"signature refused ({e.reason})") from None
        try:
            # orjson: 1.2 µs a check-in's body, json 5.3.
            payload = orjson.loads(request.body)
        except ValueError:  # orjson's JSONDecodeError is one, for bad UTF-8 and depth too
            raise Rejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise Rejected(400, "body is not a JSON object")
        try:
            message = parse_bot_message(
                payload, now, source="dingtalk_http", robot_names=self._robot_names
            )
        except DingTalkPayloadError as e:
            raise Rejected(400, str(e)) from None
        if message is None:
            log.info("dingtalk message of type %.40r ignored", payload.get("msgtype"))
            return Parsed()
        return Parsed(messages=(message,))


def _text(obj: Mapping[str, Any], key: str, *, where: str = "", required: bool = True) -> str:
    """A string field; an absent optional one is ""."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        problem = "missing" if value is None else "not a string"
        raise DingTalkPayloadError(f"{where}{key} {problem}")
    if required and not value:
        raise DingTalkPayloadError(f"{where}{key} empty")
    return value


def _object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise DingTalkPayloadError(f"{key} {'missing' if value is None else 'not an object'}")
    return value


def _chat(payload: Mapping[str, Any], sender: str) -> ChatRef:
    kind = payload.get("conversationType")
    if kind == "1":
        return ChatRef("dingtalk", sender, is_group=False)
    if kind == "2":
        title = _text(payload, "conversationTitle", required=False)
        return ChatRef("dingtalk", _text(payload, "conversationId"), is_group=True, title=title)
    raise DingTalkPayloadError('conversationType not "1" or "2"')


def _mentions(payload: Mapping[str, Any], bot_id: str) -> tuple[tuple[str, ...], bool]:
    """The ids @-mentioned besides the robot (staffId when given), and whether it was."""
    users = payload.get("atUsers") or []
    if not isinstance(users, list):
        raise DingTalkPayloadError("atUsers not a list")
    ids: dict[str, None] = {}  # ordered and unique
    bot_mentioned = False
    for user in users:
        if not isinstance(user, dict):
            raise DingTalkPayloadError("atUsers item not an object")
        dingtalk_id = _text(user, "dingtalkId", where="atUsers.", required=False)
        if bot_id and dingtalk_id == bot_id:
            bot_mentioned = True
            continue
        user_id = _text(user, "staffId", where="atUsers.", required=False) or dingtalk_id
        if user_id:
            ids[user_id] = None
    return tuple(ids), bot_mentioned


def _download_code(item: Mapping[str, Any], where: str) -> str:
    # downloadCode is the one messageFiles/download takes; the other is a fallback.
    return _text(item, "downloadCode", where=where, required=False) or _text(
        item, "pictureDownloadCode", where=where
    )


def _rich_text(
    content: Mapping[str, Any], names: set[str], lone_mention_is_bot: bool
) -> tuple[str, tuple[Media, ...]]:
    """Text segments joined in order (they carry their own line breaks), pictures as Media."""
    items = content.get("richText")
    if not isinstance(items, list):
        raise DingTalkPayloadError("content.richText not a list")
    parts: list[str] = []
    media: list[Media] = []
    for item in items:
        if not isinstance(item, dict):
            raise DingTalkPayloadError("content.richText item not an object")
        if "text" in item:
            segment = _text(item, "text", where="content.richText.", required=False)
            bare = segment.strip()
            is_bot = bare.lstrip("@") in names or lone_mention_is_bot
            if not (is_bot and _LONE_MENTION.fullmatch(bare)):
                parts.append(segment)
        elif "downloadCode" in item or "pictureDownloadCode" in item:
            kind = _text(item, "type", where="content.richText.", required=False) or "picture"
            code = _download_code(item, "content.richText.")
            media.append(Media("image" if kind == "picture" else "file", code))
    return "".join(parts), tuple(media)


def _strip_names(text: str, names: set[str]) -> str:
    if not names:
        return text
    pattern = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.sub(rf"@(?:{pattern})(?=\s|$)", "", text)


def _reply_route(payload: Mapping[str, Any]) -> ReplyRoute | None:
    url = _text(payload, "sessionWebhook", required=False)
    if not url:
        return None
    expiry = payload.get("sessionWebhookExpiredTime")
    if expiry is None:
        return ReplyRoute("dingtalk_session", url)
    if isinstance(expiry, str) and _MILLIS.fullmatch(expiry):
        expiry = int(expiry)
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        raise DingTalkPayloadError("sessionWebhookExpiredTime not a number")
    try:
        expires_at = datetime.fromtimestamp(expiry / 1000, SHANGHAI)
    except (OverflowError, OSError, ValueError):
        raise DingTalkPayloadError("sessionWebhookExpiredTime out of range") from None
    return ReplyRoute("dingtalk_session", url, expires_at)
