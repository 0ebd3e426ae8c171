"""WeCom's message rules: error codes, msgtypes, size limits and payload checks (§2–3).

Codes marked "(fake)" are this fake's choice where the real code is unconfirmed; tests should
assert on them through these constants, not literals.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from aiohttp import web

from tests.fakes.server import utf8_len

ERRMSG = {
    40001: "invalid credential",
    40005: "invalid media type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40035: "invalid parameter",
    40056: "invalid agentid",
    41001: "access_token missing",
    42001: "access_token expired",
    44001: "empty media data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    47001: "data format error",
    81013: "all receivers invalid",
    86003: "chatid not found",
    93000: "invalid webhook url",
    301019: "md5 not match",
}
CHAT_NOT_FOUND = 86003  # (fake) appchat/send to a chat the app did not create
MD5_MISMATCH = 301019  # (fake) robot image whose md5 is not that of the decoded bytes
RESPONSE_URL_INVALID = 40035  # (fake) aibot response_url unknown, used or expired

_COMMON = ("text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown")
APPCHAT_MSGTYPES = frozenset(_COMMON)
APP_MSGTYPES = frozenset((*_COMMON, "miniprogram_notice", "template_card"))
ROBOT_MSGTYPES = frozenset(
    ("text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card")
)
# App text/markdown are 2048 bytes per page 90236 (2nd-hand); robot markdown is 4096 (§3).
APP_LIMITS = {"text": 2048, "markdown": 2048}
ROBOT_LIMITS = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}
AIBOT_LIMITS = {"markdown": 20480}  # (fake) the stream reply limit, applied to proactive sends
IMAGE_MAX = 2 << 20
MEDIA_MAX = {"file": 20 << 20, "voice": 2 << 20}
MEDIA_TTL = 3 * 86400.0


def errcode(code: int, errmsg: str | None = None) -> web.Response:
    # WeCom reports failures in the JSON body with HTTP 200.
    return web.json_response({"errcode": code, "errmsg": errmsg or ERRMSG.get(code, "error")})


def ok(**extra: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **extra})


def content_error(msgtype: str, payload: Any, limits: dict[str, int]) -> int | None:
    """The errcode for a malformed ``<msgtype>`` object, or None when it is acceptable."""
    if not isinstance(payload, dict) or not payload:
        return 44004
    if msgtype in limits:
        content = payload.get("content")
        if not isinstance(content, str) or not content:
            return 44004
        if utf8_len(content) > limits[msgtype]:
            return 45002
    return None


def robot_payload_error(msgtype: str, payload: Any) -> int | None:
    """Checks of a group-robot ``<msgtype>`` object other than media_id ownership."""
    if (code := content_error(msgtype, payload, ROBOT_LIMITS)) is not None:
        return code
    if msgtype == "text":
        for name in ("mentioned_list", "mentioned_mobile_list"):
            value = payload.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return 40035
    elif msgtype == "image":
        return _image_error(payload)
    elif msgtype == "news":
        articles = payload.get("articles")
        if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
            return 40035
        if not all(isinstance(a, dict) and a.get("title") and a.get("url") for a in articles):
            return 40035
    elif msgtype == "template_card" and payload.get("card_type") not in (
        "text_notice",
        "news_notice",
    ):
        return 40035
    return None


def _image_error(payload: dict[str, Any]) -> int | None:
    encoded, md5 = payload.get("base64"), payload.get("md5")
    if not isinstance(encoded, str) or not isinstance(md5, str):
        return 40035
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return 40035
    if not raw:
        return 44004
    if len(raw) > IMAGE_MAX:
        return 45002
    # md5 is of the raw bytes, not of the base64 text: a common client mistake.
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != md5.lower():
        return MD5_MISMATCH
    return None


def text_of(msgtype: str, body: dict[str, Any]) -> str | None:
    payload = body.get(msgtype)
    if msgtype in ("text", "markdown", "markdown_v2") and isinstance(payload, dict):
        content = payload.get("content")
        return content if isinstance(content, str) else None
    return None
