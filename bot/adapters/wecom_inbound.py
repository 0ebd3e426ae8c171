"""WeCom callbacks in: the self-built app (encrypted XML, PLATFORMS.md §1) and what both WeCom
endpoints share (URL verification, the replay window, crypto errors as HTTP statuses).

WeCom drops a callback not answered within 5 s and sends it again, three times, so every answer
is an immediate empty 200 and the bot's reply goes later through the send APIs. A refusal is a
``Rejected``: 403 when the request is not provably WeCom's (signature, replayed timestamp), 400
when it is malformed. The AI bot (智能机器人) endpoint lives in ``wecom_bot_inbound``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from bot.adapters.base import HttpReply, HttpRequest, Parsed, Rejected
from bot.adapters.wecom_crypto import WeComCrypto, WeComCryptoError, parse_xml
from bot.messages import ChatRef, Inbound, Media, Platform

__all__ = ["WeComAppWebhook", "WeComCallback"]

log = logging.getLogger(__name__)

# App message types that carry evidence as a media id (valid three days through media/get).
_APP_MEDIA: dict[str, Literal["image", "voice", "video", "file"]] = {
    "image": "image",
    "voice": "voice",
    "video": "video",
    "file": "file",
}


def _required(query: Mapping[str, str], *names: str) -> list[str]:
    missing = [name for name in names if not query.get(name)]
    if missing:
        raise Rejected(400, "missing query parameter " + ", ".join(missing))
    return [query[name] for name in names]


class WeComCallback:
    """One WeCom callback URL: GET is the URL verification, POST an encrypted message.

    Subclasses read the decrypted payload in ``receive``; they may raise ``Rejected`` or let a
    ``WeComCryptoError`` (bad XML or JSON) through, which becomes its 400/403.
    """

    path: str
    platform: Platform = "wecom"

    def __init__(self, crypto: WeComCrypto, window_seconds: int) -> None:
        self._crypto = crypto
        self._window = window_seconds

    def __repr__(self) -> str:  # the crypto object holds the token and key
        return f"{type(self).__name__}(path={self.path!r})"

    def handle(self, request: HttpRequest, now: datetime) -> Parsed:
        # A missing signature is a malformed request (400), not a failed proof (403): WeCom
        # always sends one, and the distinction tells an operator "misconfigured" from "forged".
        names = ["msg_signature", "timestamp", "nonce"]
        if request.method == "GET":
            names.append("echostr")
        params = _required(request.query, *names)
        signature, timestamp, nonce = params[:3]
        self._check_window(timestamp, now)
        try:
            if request.method == "GET":
                plaintext = self._crypto.verify_url(signature, timestamp, nonce, params[3])
                return Parsed(reply=HttpReply(body=plaintext.encode("utf-8")))
            return self.receive(request.body, (signature, timestamp, nonce), now)
        except WeComCryptoError as e:
            raise Rejected(e.http_status, str(e)) from None

    def receive(self, body: bytes, stamp: tuple[str, str, str], now: datetime) -> Parsed:
        raise NotImplementedError

    def _check_window(self, timestamp: str, now: datetime) -> None:
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise Rejected(400, "timestamp is not epoch seconds")
        if abs(now.timestamp() - int(timestamp)) > self._window:
            raise Rejected(403, "timestamp outside the replay window")


class WeComAppWebhook(WeComCallback):
    """The self-built app's callback URL (/hooks/wecom); it receives one-to-one messages only."""

    path = "wecom"

    def __init__(self, token: str, aes_key: str, corp_id: str, window_seconds: int) -> None:
        super().__init__(WeComCrypto(token, aes_key, corp_id), window_seconds)

    def receive(self, body: bytes, stamp: tuple[str, str, str], now: datetime) -> Parsed:
        plaintext = self._crypto.decrypt_xml_body(body, *stamp)
        fields = parse_xml(plaintext.encode("utf-8"))
        msg_type, user = fields.get("MsgType", ""), fields.get("FromUserName", "")
        if not user:
            raise Rejected(400, "message without FromUserName")
        if msg_type == "event":
            # Events (subscribe, enter_agent, click, ...) ask nothing of the bot yet.
            log.info("wecom app event %s from %s ignored", fields.get("Event") or "?", user)
            return Parsed()
        content = _app_content(msg_type, fields)
        if content is None:
            log.info("wecom app message of type %s from %s ignored", msg_type or "?", user)
            return Parsed()
        msg_id = fields.get("MsgId", "")
        if not msg_id:
            raise Rejected(400, f"{msg_type} message without MsgId")
        text, media = content
        message = Inbound(
            platform="wecom",
            event_id=msg_id,
            chat=ChatRef("wecom", user, is_group=False),
            sender_id=user,
            sender_name="",  # callbacks carry no names; the directory maps ids to people
            text=text.strip(),
            received_at=now,
            source="wecom_app",
            media=media,
        )
        return Parsed((message,))


def _app_content(msg_type: str, fields: dict[str, str]) -> tuple[str, tuple[Media, ...]] | None:
    if msg_type == "text":
        return fields.get("Content", ""), ()
    kind = _APP_MEDIA.get(msg_type)
    if kind is None:
        return None
    # MediaId outlives PicUrl and works through the API; PicUrl is the fallback for images.
    ref = fields.get("MediaId") or (fields.get("PicUrl", "") if kind == "image" else "")
    if not ref:
        raise Rejected(400, f"{msg_type} message without MediaId")
    return "", (Media(kind, ref),)
