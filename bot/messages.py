"""The platform-neutral message model: adapters translate to and from it, nothing else does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Platform = Literal["wecom", "dingtalk", "console"]


@dataclass(frozen=True, slots=True)
class ChatRef:
    platform: Platform
    chat_id: str  # the group's conversation id, or the sender's user id in a one-to-one chat
    is_group: bool
    title: str = ""


@dataclass(frozen=True, slots=True)
class Media:
    """Evidence attached to a message, kept as the platform names it."""

    kind: Literal["image", "file", "voice", "video"]
    ref: str  # media id, download code or URL


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """A way to answer this very message that the platform hands out with it.

    DingTalk's sessionWebhook and WeCom's response_url expire: good for a reply, never for a
    scheduled post.
    """

    kind: Literal["dingtalk_session", "wecom_response_url"]
    url: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    platform: Platform
    event_id: str  # the platform's message id: the deduplication key
    chat: ChatRef
    sender_id: str  # WeCom userid, DingTalk staffId, console person id
    sender_name: str
    text: str  # the bot's own @-mention removed, surrounding blanks stripped
    received_at: datetime
    source: (
        str  # the inbound channel: dingtalk_http, dingtalk_stream, wecom_app, wecom_aibot, console
    )
    media: tuple[Media, ...] = ()
    mentions: tuple[str, ...] = ()  # user ids @-mentioned besides the bot
    reply_route: ReplyRoute | None = None


@dataclass(frozen=True, slots=True)
class Mention:
    """A person to @-mention; adapters write the platform's syntax."""

    name: str
    user_id: str | None = None
    mobile: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """A file posted after the text (the 台账 workbook); only WeCom group robots send files."""

    name: str  # what the chat shows, e.g. 台账-2026-11.xlsx
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Outbound:
    """What the bot says, before any platform shapes it.

    `body` is the Markdown subset both platforms render (headings, bold, links, lists, quotes);
    with `format="text"` it is sent as plain text.
    """

    body: str
    format: Literal["markdown", "text"] = "markdown"
    title: str = ""  # DingTalk shows it in the chat list and notifications
    mentions: tuple[Mention, ...] = ()
    image: bytes | None = None  # PNG or JPEG, posted after the text
    file: OutboundFile | None = None  # posted after the text (and the image)


def inbound_record(msg: Inbound) -> dict[str, Any]:
    """The message as JSON, kept by the inbox until its handling commits."""
    route = msg.reply_route
    return {
        "platform": msg.platform,
        "event_id": msg.event_id,
        "chat": [msg.chat.platform, msg.chat.chat_id, msg.chat.is_group, msg.chat.title],
        "sender_id": msg.sender_id,
        "sender_name": msg.sender_name,
        "text": msg.text,
        "received_at": msg.received_at.isoformat(),
        "source": msg.source,
        "media": [[m.kind, m.ref] for m in msg.media],
        "mentions": list(msg.mentions),
        "reply_route": None
        if route is None
        else [route.kind, route.url, route.expires_at.isoformat() if route.expires_at else None],
    }


def inbound_from_record(record: dict[str, Any]) -> Inbound:
    """The message `inbound_record` kept; KeyError or ValueError when it is not one."""
    platform, chat_id, is_group, title = record["chat"]
    route = record["reply_route"]
    return Inbound(
        platform=record["platform"],
        event_id=record["event_id"],
        chat=ChatRef(platform, chat_id, bool(is_group), title),
        sender_id=record["sender_id"],
        sender_name=record["sender_name"],
        text=record["text"],
        received_at=datetime.fromisoformat(record["received_at"]),
        source=record["source"],
        media=tuple(Media(kind, ref) for kind, ref in record["media"]),
        mentions=tuple(record["mentions"]),
        reply_route=None
        if route is None
        else ReplyRoute(route[0], route[1], datetime.fromisoformat(route[2]) if route[2] else None),
    )
