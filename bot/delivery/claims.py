"""The outbox rows' life, as short database statements: pick the lanes' heads, claim,
record how a send ended, and put back what a stopped process left in flight.

Each function runs inside the caller's transaction; the worker keeps those transactions short
and never holds one open across an HTTP call. On PostgreSQL a claim locks each head it takes,
and only those, with ``FOR UPDATE SKIP LOCKED``, so several instances share the table without
taking the same row or waiting for one another. SQLite ignores the clause; there the claim's
conditional UPDATE decides, its single writer making a second claimer find the row taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import OutboxMessage as Row

LIVE = ("pending", "sending")  # states that hold a lane
FOLLOWER_LOOKAHEAD = 100
ERROR_CHARS = 500


async def lane_heads(session: AsyncSession, now: datetime) -> list[Row]:
    """Per lane (platform, chat), its oldest live row, when that row is pending and due.

    A lane whose oldest row is being sent, or waits for a retry, yields nothing: its later
    rows wait, so one chat's messages are shown in the order they were queued.
    """
    heads = select(func.min(Row.id)).where(Row.status.in_(LIVE)).group_by(Row.platform, Row.chat_id)
    stmt = (
        select(Row)
        .where(Row.id.in_(heads), Row.status == "pending", Row.next_attempt_at <= now)
        .order_by(Row.id)
    )
    return list((await session.scalars(stmt)).all())


async def lock_head(session: AsyncSession, head: Row, now: datetime) -> Row | None:
    """``head`` locked for this transaction and read afresh, if it is still pending and due;
    None when another instance holds or has taken it (it is skipped, never waited for)."""
    stmt = (
        select(Row)
        .where(Row.id == head.id, Row.status == "pending", Row.next_attempt_at <= now)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def next_retry(session: AsyncSession, now: datetime) -> datetime | None:
    """When the earliest waiting retry falls due."""
    stmt = select(func.min(Row.next_attempt_at)).where(
        Row.status == "pending", Row.next_attempt_at > now
    )
    return cast(datetime | None, await session.scalar(stmt))


async def bound_followers(session: AsyncSession, head_id: int) -> list[Row]:
    """Rows already coalesced into ``head_id`` by an earlier claim, in order."""
    stmt = select(Row).where(Row.merged_into == head_id, Row.status == "merged").order_by(Row.id)
    return list((await session.scalars(stmt)).all())


async def candidates(session: AsyncSession, head: Row, now: datetime) -> list[Row]:
    """The rows right behind ``head`` in its lane that may join it, in order.

    Unlocked: only the instance holding a lane's head touches the rows behind it."""
    stmt = (
        select(Row)
        .where(
            Row.platform == head.platform,
            Row.chat_id == head.chat_id,
            Row.status == "pending",
            Row.id > head.id,
        )
        .order_by(Row.id)
        .limit(FOLLOWER_LOOKAHEAD)
    )
    found = []
    for row in (await session.scalars(stmt)).all():
        fresh = row.attempts == 0 and row.sent_parts == 0 and row.next_attempt_at <= now
        if not (row.mergeable and row.kind == head.kind and fresh):
            break  # it must go out on its own, and nothing behind it may overtake it
        found.append(row)
    return found


async def mark_claimed(
    session: AsyncSession,
    head: Row,
    followers: Sequence[Row],
    *,
    instance: str,
    now: datetime,
) -> bool:
    """Take ``head`` (and the rows coalesced into it) if it is still pending.

    A conditional UPDATE, so that two claimers can never both win: on SQLite, where the
    lock above is a no-op, the second waits for the first's commit and then finds the row
    taken.
    """
    stmt = (
        update(Row)
        .where(Row.id == head.id, Row.status == "pending")
        .values(status="sending", claimed_at=now, claimed_by=instance)
    )
    if _rowcount(await session.execute(stmt)) != 1:
        return False
    if followers:
        stmt = (
            update(Row)
            .where(Row.id.in_([r.id for r in followers]), Row.status.in_(("pending", "merged")))
            .values(status="merged", merged_into=head.id)
        )
        await session.execute(stmt)
    return True


async def mark_sent(session: AsyncSession, head_id: int, *, instance: str, now: datetime) -> bool:
    """False when this instance no longer holds the claim (another took it over)."""
    if not await _update_claimed(
        session, head_id, instance, status="sent", sent_at=now, last_error=None
    ):
        return False
    await _update_followers(session, head_id, status="sent", sent_at=now)
    return True


async def mark_retry(
    session: AsyncSession,
    head_id: int,
    *,
    instance: str,
    attempts: int,
    at: datetime,
    sent_parts: int,
    error: str,
    route: dict[str, Any] | None = None,
) -> bool:
    values: dict[str, Any] = {
        "status": "pending",
        "attempts": attempts,
        "next_attempt_at": at,
        "sent_parts": sent_parts,
        "last_error": error[:ERROR_CHARS],
    }
    if route is not None:
        values["route"] = route
    return await _update_claimed(session, head_id, instance, **values)


async def mark_dead(
    session: AsyncSession,
    head_id: int,
    *,
    instance: str | None,
    attempts: int,
    sent_parts: int,
    error: str,
) -> bool:
    """``instance`` None: the row was never claimed (it could not even be routed)."""
    values = {
        "status": "dead",
        "attempts": attempts,
        "sent_parts": sent_parts,
        "last_error": error[:ERROR_CHARS],
    }
    if instance is None:
        stmt = update(Row).where(Row.id == head_id, Row.status == "pending").values(**values)
        done = _rowcount(await session.execute(stmt)) == 1
    else:
        done = await _update_claimed(session, head_id, instance, **values)
    if done:
        await _update_followers(session, head_id, status="dead")
    return done


async def in_flight(session: AsyncSession) -> list[Row]:
    stmt = select(Row).where(Row.status == "sending").with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def release(session: AsyncSession, abandoned: Callable[[Row], bool]) -> list[int]:
    """Put the rows in flight that ``abandoned`` picks back in the queue; their ids."""
    ids = [row.id for row in await in_flight(session) if abandoned(row)]
    if ids:
        stmt = (
            update(Row)
            .where(Row.id.in_(ids), Row.status == "sending")
            .values(status="pending", claimed_at=None, claimed_by=None)
        )
        await session.execute(stmt)
    return ids


async def _update_claimed(
    session: AsyncSession, head_id: int, instance: str, **values: Any
) -> bool:
    values.setdefault("claimed_at", None)
    values.setdefault("claimed_by", None)
    stmt = (
        update(Row)
        .where(Row.id == head_id, Row.status == "sending", Row.claimed_by == instance)
        .values(**values)
    )
    return _rowcount(await session.execute(stmt)) == 1


async def _update_followers(session: AsyncSession, head_id: int, **values: Any) -> None:
    await session.execute(update(Row).where(Row.merged_into == head_id).values(**values))


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
