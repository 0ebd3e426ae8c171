"""The outbox: every message the bot decides to send is a row, written in the caller's
transaction together with the change that caused it, under a unique deduplication key.

A row remembers where the message goes without any secret: a configured group by its key
(its channel and secrets are looked up at send time, from the configuration and the
environment), or a reply route the platform handed out with an incoming message (DingTalk's
sessionWebhook, WeCom's response_url), which expires. ``bot.delivery`` sends the rows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulk import insert_rows
from bot.db import claim
from bot.deployment import Loaded
from bot.deployment.schema import Group
from bot.messages import Inbound, Mention, Outbound, OutboundFile, Platform
from bot.models import OutboxMessage

__all__ = [
    "GroupIndex",
    "Queued",
    "Target",
    "enqueue",
    "enqueue_many",
    "group_target",
    "groups_of",
    "message_from_json",
    "message_to_json",
    "queued_already",
    "reply_target",
    "row_target",
]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a queued message goes: a configured group (``group_key``) or a reply route.

    ``platform`` and ``chat_id`` are the lane: messages to one chat go out in order.
    For a reply route, ``channel_type`` is the sender to use, ``url`` the route (a short-lived
    credential: never logged), ``expires_at`` when it stops working.
    """

    platform: Platform
    chat_id: str
    group_key: str | None = None
    channel_type: str = ""
    url: str = ""
    expires_at: datetime | None = None
    is_group: bool = True

    def __repr__(self) -> str:
        where = self.group_key or self.channel_type
        return f"Target({self.platform}, {self.chat_id}, {where})"

    @property
    def channel(self) -> str:
        """The name metrics, alerts and the status report group messages by."""
        return self.group_key or self.channel_type


def group_target(group: Group) -> Target:
    """A configured group, posted into through its configured channel."""
    return Target(group.platform, group.chat_id, group_key=group.id)


def reply_target(msg: Inbound, deployment: Loaded) -> Target:
    """The way back to whoever wrote ``msg``, chosen the way ``bot.delivery.resolve``
    falls back, except that the route's expiry is checked when the reply is sent, not now."""
    chat, route = msg.chat, msg.reply_route
    if route is not None:
        return Target(
            msg.platform,
            chat.chat_id,
            channel_type=route.kind,
            url=route.url,
            expires_at=route.expires_at,
            is_group=chat.is_group,
        )
    if msg.platform == "console":
        return Target("console", chat.chat_id, channel_type="console", is_group=chat.is_group)
    if chat.is_group:
        group = groups_of(deployment).find(msg.platform, chat.chat_id)
        if group is not None:
            return group_target(group)
        channel = "dingtalk_openapi" if msg.platform == "dingtalk" else "wecom_aibot"
        return Target(msg.platform, chat.chat_id, channel_type=channel)
    channel = "dingtalk_user" if msg.platform == "dingtalk" else "wecom_app_user"
    if msg.source == "wecom_aibot":
        channel = "wecom_aibot"
    return Target(msg.platform, msg.sender_id, channel_type=channel, is_group=False)


class GroupIndex:
    """The configured groups by key and by chat: a reply (and every send) looks its group up
    without walking a province's 2,500 groups. ``find`` answers with the first group
    configured for a chat; the console names groups by their key."""

    def __init__(self, groups: Iterable[Group]) -> None:
        self._by_key: dict[str, Group] = {}
        self._by_chat: dict[tuple[str, str], Group] = {}
        for group in groups:
            self._by_key.setdefault(group.id, group)
            self._by_chat.setdefault((group.platform, group.chat_id), group)

    def by_key(self, key: str) -> Group | None:
        return self._by_key.get(key)

    def find(self, platform: str, chat_id: str) -> Group | None:
        group = self._by_chat.get((platform, chat_id))
        if group is None and platform == "console":
            return self._by_key.get(chat_id)
        return group


_indexes: dict[int, tuple[weakref.ref[Loaded], GroupIndex]] = {}


def groups_of(deployment: Loaded) -> GroupIndex:
    """The deployment's groups indexed, built once per loaded configuration (which does not
    change while it is in use: a new configuration is a new ``Loaded``)."""
    key = id(deployment)
    known = _indexes.get(key)
    if known is not None and known[0]() is deployment:
        return known[1]
    index = GroupIndex(deployment.spec.groups)
    _indexes[key] = (weakref.ref(deployment, lambda _: _indexes.pop(key, None)), index)
    return index


async def enqueue(
    session: AsyncSession,
    message: Outbound,
    *,
    to: Target,
    kind: str,
    dedupe_key: str,
    now: datetime,
    coalesce: bool = False,
) -> bool:
    """Queue ``message`` in the caller's transaction; False when ``dedupe_key`` is queued
    already (then nothing changes). Nudge the delivery worker after the commit.

    ``coalesce``: pending messages of the same ``kind`` to the same chat may go out as one
    post (reminders for ten units, say), within the platform's size limit.
    """
    row = _row(Queued(message, to, kind, dedupe_key, coalesce), now)
    return await claim(session, OutboxMessage.__table__, row)


@dataclass(frozen=True, slots=True)
class Queued:
    """One message for ``enqueue_many``: ``enqueue``'s arguments but the session and time."""

    message: Outbound
    to: Target
    kind: str
    dedupe_key: str
    coalesce: bool = False


async def enqueue_many(session: AsyncSession, items: Sequence[Queued], *, now: datetime) -> None:
    """``enqueue`` for many messages, in order, in a few statements instead of one each: a
    job that posts thousands of times must not make thousands of round trips. A key that is
    queued already is skipped, as ``enqueue`` skips it."""
    rows = (tuple(_row(item, now).values()) for item in items)
    table = cast(Table, OutboxMessage.__table__)
    await insert_rows(session, table, _ROW_COLUMNS, rows, skip_existing=True)


class Batches:
    """``enqueue_many`` for a job that makes thousands of posts: a batch is written while
    the next is made, so the database's time (40 ms a thousand posts on PostgreSQL) overlaps
    the rendering's. At most two batches are held. Inside the ``async with`` nothing else may
    use the session until ``settle()`` has returned (asyncpg refuses a second operation on a
    connection busy with the write); leaving it writes the rest, or, on an error, waits for
    the write in flight so that the transaction can roll back."""

    # The write in flight takes a step at each of these: a thousand posts render in ~25 ms,
    # and each of the write's round trips would otherwise wait for the whole batch.
    YIELD_EVERY = 20

    def __init__(self, session: AsyncSession, now: datetime, at_once: int = 1000) -> None:
        self._session, self._now, self._at_once = session, now, at_once
        self._batch: list[Queued] = []
        self._writing: asyncio.Task[None] | None = None
        self.count = 0

    async def add(self, item: Queued) -> None:
        self._batch.append(item)
        self.count += 1
        if len(self._batch) >= self._at_once:
            await self._write()
        elif self._writing is not None and self.count % self.YIELD_EVERY == 0:
            await asyncio.sleep(0)

    async def _write(self) -> None:
        await self.settle()
        batch, self._batch = self._batch, []
        self._writing = asyncio.create_task(enqueue_many(self._session, batch, now=self._now))

    async def settle(self) -> None:
        """Wait for the write in flight: the session is free until the next ``add``."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def __aenter__(self) -> Batches:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            if self._batch:
                await self._write()
            await self.settle()
        elif (writing := self._writing) is not None:
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # seen: the error that brought us here is the one raised


async def queued_already(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that some message was queued under, ever: a job that posts by the
    thousand renders only what is new (a few thousand keys at a time; each is looked up in
    the unique index)."""
    if not keys:
        return set()
    found = await session.scalars(
        select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(keys))
    )
    return set(found)


_ROW_COLUMNS = (
    "dedupe_key", "kind", "platform", "chat_id", "channel", "group_key", "route", "body",
    "mergeable", "status", "attempts", "sent_parts", "next_attempt_at", "created_at",
)  # fmt: skip


def _row(item: Queued, now: datetime) -> dict[str, Any]:
    """The row's values, in the order of ``_ROW_COLUMNS``."""
    to = item.to
    route = None
    if to.group_key is None:
        route = {
            "channel_type": to.channel_type,
            "url": to.url,
            "expires_at": to.expires_at.isoformat() if to.expires_at else None,
            "is_group": to.is_group,
        }
    return {
        "dedupe_key": item.dedupe_key,
        "kind": item.kind,
        "platform": to.platform,
        "chat_id": to.chat_id,
        "channel": to.channel,
        "group_key": to.group_key,
        "route": route,
        "body": message_to_json(item.message),
        "mergeable": item.coalesce,
        "status": "pending",
        "attempts": 0,
        "sent_parts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def row_target(row: OutboxMessage) -> Target:
    """The target a row was queued for."""
    platform = cast(Platform, row.platform)  # written from a Target
    if row.group_key is not None:
        return Target(platform, row.chat_id, group_key=row.group_key)
    route = row.route or {}
    expires = route.get("expires_at")
    return Target(
        platform,
        row.chat_id,
        channel_type=str(route.get("channel_type", "")),
        url=str(route.get("url", "")),
        expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
        is_group=bool(route.get("is_group", True)),
    )


def message_to_json(message: Outbound) -> dict[str, Any]:
    return {
        "body": message.body,
        "format": message.format,
        "title": message.title,
        "mentions": [
            {"name": m.name, "user_id": m.user_id, "mobile": m.mobile} for m in message.mentions
        ],
        "image": base64.b64encode(message.image).decode("ascii") if message.image else None,
        "file": (
            {"name": message.file.name, "data": base64.b64encode(message.file.data).decode("ascii")}
            if message.file
            else None
        ),
    }


def message_from_json(data: dict[str, Any]) -> Outbound:
    """The stored message; raises ValueError when the JSON is not one."""
    try:
        fmt = data.get("format", "markdown")
        if fmt not in ("markdown", "text"):
            raise ValueError(f"unknown format {fmt!r}")
        image, file = data.get("image"), data.get("file")
        return Outbound(
            body=str(data["body"]),
            format=fmt,
            title=str(data.get("title", "")),
            mentions=tuple(
                Mention(str(m["name"]), m.get("user_id"), m.get("mobile"))
                for m in data.get("mentions", [])
            ),
            image=base64.b64decode(image, validate=True) if image else None,
            file=(
                OutboundFile(str(file["name"]), base64.b64decode(file["data"], validate=True))
                if file
                else None
            ),
        )
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ValueError(f"not a stored message: {type(exc).__name__}") from None
