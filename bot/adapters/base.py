"""The two faces of a platform adapter, free of any web framework.

Inbound: `WebhookAdapter.handle()` turns one HTTP request into neutral messages (or refuses it
with the status to answer). Outbound: `Sender.send()` delivers one neutral message to one
destination, raising `DeliveryError` that says whether trying again can help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.messages import Inbound, Outbound, Platform


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    query: Mapping[str, str]  # already URL-decoded
    headers: Mapping[str, str]  # case-insensitive mapping
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class Parsed:
    messages: tuple[Inbound, ...] = ()
    reply: HttpReply = field(default_factory=HttpReply)


class Rejected(Exception):
    """A request the adapter refuses; `status` is what the route answers, `reason` what it logs.

    The reason never carries secrets or whole payloads.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookAdapter(Protocol):
    path: str  # the route is /hooks/<path>
    platform: Platform

    def handle(self, request: HttpRequest, now: datetime) -> Parsed:
        """Verify, decrypt and parse; raise Rejected for anything that is not a valid callback."""
        ...


@dataclass(frozen=True, slots=True)
class Destination:
    """Where one message goes: a chat, through one channel, with that channel's secrets."""

    platform: Platform
    chat_id: str  # group conversation id, webhook owner's chat, or a user id for 1:1
    channel_type: str  # wecom_webhook, wecom_appchat, wecom_aibot, wecom_app_user,
    #                    wecom_response_url, dingtalk_openapi, dingtalk_webhook,
    #                    dingtalk_user, dingtalk_session, console
    secrets: Mapping[str, str] = field(default_factory=dict)  # key / access_token / secret
    url: str = ""  # for session webhooks and response URLs
    is_group: bool = True

    def __repr__(self) -> str:  # secrets stay out of logs and tracebacks
        return f"Destination({self.platform}, {self.channel_type}, {self.chat_id})"


class DeliveryError(Exception):
    """A send that did not go through.

    `retryable`: a rate limit, a 5xx, a timeout or a dropped connection: try later.
    Otherwise permanent (bad key, refused signature, unknown chat, too large after splitting).
    """

    def __init__(
        self, message: str, *, retryable: bool, code: str = "", sent_parts: int = 0
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        # How many of the message's parts went out before the failure: resume with skip_parts.
        self.sent_parts = sent_parts


class Sender(Protocol):
    @property
    def channel_types(self) -> tuple[str, ...]: ...

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None: ...
