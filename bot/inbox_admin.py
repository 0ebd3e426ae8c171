"""The messages the inbox set aside, for an operator: listed, and given back to be tried again.

The inbox sets a message aside when its handling failed `MAX_ATTEMPTS` times (or its stored
copy cannot be read): the row is marked handled but keeps its body, where handling clears it.
Giving one back makes the row unhandled again with no attempts counted; the inbox then takes
it like any message a dead process left, at the next start or within a sweep of any running
instance (set-aside messages are long past `ORPHANED_AFTER`), and `take` still lets only one
handling through. Nothing here handles a message itself: the inbox's path is the only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast, get_args

from sqlalchemy import Select, Table, Text, func, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.db import Database
from bot.messages import Platform, inbound_from_record
from bot.metrics import Metrics
from bot.models import InboundSeen

Key = tuple[str, str]  # platform, event id
PREVIEW = 40  # characters of the text shown in a listing

_SEEN = cast(Table, InboundSeen.__table__)
# Handling clears the body to SQL NULL; a JSON null (what a Python None becomes in a JSON
# column) is no message either.
_SET_ASIDE = (
    _SEEN.c.handled_at.is_not(None)
    & _SEEN.c.body.is_not(None)
    & (sa_cast(_SEEN.c.body, Text) != "null")
)


@dataclass(frozen=True, slots=True)
class SetAside:
    platform: str
    event_id: str
    seen_at: datetime
    attempts: int
    sender: str  # name (id); empty when the stored copy cannot be read
    text: str  # its start, on one line
    readable: bool  # False: given back, the inbox would only set it aside again

    @property
    def key(self) -> Key:
        return (self.platform, self.event_id)


async def set_aside(
    session: AsyncSession, event_id: str | None = None, platform: str | None = None
) -> list[SetAside]:
    """The set-aside messages, oldest first: all, or those with this id (on this platform)."""
    stmt = (
        select(_SEEN.c.platform, _SEEN.c.event_id, _SEEN.c.seen_at, _SEEN.c.attempts, _SEEN.c.body)
        .where(_SET_ASIDE)
        .order_by(_SEEN.c.seen_at, _SEEN.c.platform, _SEEN.c.event_id)
    )
    if event_id is not None:
        stmt = stmt.where(_SEEN.c.event_id == event_id)
    if platform is not None:
        stmt = stmt.where(_SEEN.c.platform == platform)
    return [_entry(*row) for row in await session.execute(stmt)]


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).where(_SET_ASIDE)) or 0)


async def is_seen(session: AsyncSession, event_id: str, platform: str | None = None) -> bool:
    """Whether the inbox knows the id at all (handled, or still waiting)."""
    return await session.scalar(seen_query(event_id, platform)) is not None


def seen_query(event_id: str, platform: str | None = None) -> Select[tuple[str]]:
    # The key leads with the platform: an id alone would be looked for in every row the
    # inbox ever accepted, where one lookup a platform finds it in the key.
    platforms = get_args(Platform) if platform is None else (platform,)
    return (
        select(_SEEN.c.event_id)
        .where(_SEEN.c.platform.in_(platforms), _SEEN.c.event_id == event_id)
        .limit(1)
    )


async def give_back(session: AsyncSession, keys: Sequence[Key]) -> list[Key]:
    """Make these set-aside messages unhandled with no attempts counted; the keys given back
    (one handled or given back meanwhile by someone else is left as it is)."""
    given: list[Key] = []
    for p, e in keys:
        row = await session.execute(
            update(_SEEN)
            .where(_SEEN.c.platform == p, _SEEN.c.event_id == e, _SET_ASIDE)
            .values(handled_at=None, attempts=0)
            .returning(_SEEN.c.platform)
        )
        if row.first() is not None:
            given.append((p, e))
    return given


def describe(entry: SetAside) -> str:
    """One line of `duban inbox list`."""
    seen = entry.seen_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    said = f"{entry.sender}：{entry.text}" if entry.readable else "（存储的消息无法读取，不能重放）"
    return f"{entry.platform} {entry.event_id}  收到于 {seen}  已尝试 {entry.attempts} 次  {said}"


def watch(metrics: Metrics, db: Database) -> None:
    """Keep the metrics' set-aside gauge current: read from the database at each scrape, so
    it is right whichever instance set the messages aside."""

    async def refresh() -> None:
        async with db.begin() as session:
            metrics.set_inbox_set_aside(await count(session))

    metrics.on_scrape(refresh)


def _entry(platform: str, event_id: str, seen_at: datetime, attempts: int, body: Any) -> SetAside:
    try:
        msg = inbound_from_record(body)
    except (KeyError, ValueError, TypeError):
        return SetAside(platform, event_id, seen_at, attempts, "", "", readable=False)
    text = " ".join(msg.text.split())
    if len(text) > PREVIEW:
        text = text[:PREVIEW] + "…"
    sender = f"{msg.sender_name}（{msg.sender_id}）" if msg.sender_name else msg.sender_id
    return SetAside(platform, event_id, seen_at, attempts, sender, text, readable=True)
