"""What the admins' commands ask of the outbox: the queue per channel, the dead messages,
and sending a dead message again (``投递 状态``, ``投递 重试 <编号>``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import OutboxMessage as Row

DEAD_SHOWN = 20


@dataclass(frozen=True, slots=True)
class ChannelQueue:
    channel: str
    pending: int  # waiting, or riding along in a coalesced post
    sending: int
    dead: int


@dataclass(frozen=True, slots=True)
class DeadMessage:
    id: int
    channel: str
    kind: str
    attempts: int
    created_at: datetime
    last_error: str


@dataclass(frozen=True, slots=True)
class QueueStatus:
    channels: tuple[ChannelQueue, ...]  # channels with anything not yet sent, by name
    dead: tuple[DeadMessage, ...]  # the latest DEAD_SHOWN, newest first
    dead_total: int


async def depth(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Rows not yet sent, per (channel, status)."""
    stmt = (
        select(Row.channel, Row.status, func.count())
        .where(Row.status != "sent")
        .group_by(Row.channel, Row.status)
    )
    return {(channel, status): n for channel, status, n in (await session.execute(stmt)).all()}


async def queue_status(session: AsyncSession) -> QueueStatus:
    counts = await depth(session)
    channels = sorted({channel for channel, _ in counts})
    queues = tuple(
        ChannelQueue(
            channel,
            pending=counts.get((channel, "pending"), 0) + counts.get((channel, "merged"), 0),
            sending=counts.get((channel, "sending"), 0),
            dead=counts.get((channel, "dead"), 0),
        )
        for channel in channels
    )
    stmt = select(Row).where(Row.status == "dead").order_by(Row.id.desc()).limit(DEAD_SHOWN)
    dead = tuple(
        DeadMessage(r.id, r.channel, r.kind, r.attempts, r.created_at, r.last_error or "")
        for r in (await session.scalars(stmt)).all()
    )
    return QueueStatus(queues, dead, sum(q.dead for q in queues))


async def retry_dead(session: AsyncSession, message_id: int, now: datetime) -> int:
    """Queue dead message ``message_id`` again, due now; how many rows that revived (it and
    the messages coalesced with it), 0 when there is no such dead message.

    Parts already shown stay skipped, so a message that died halfway resumes where it stopped.
    """
    row = await session.get(Row, message_id, with_for_update=True)
    if row is None:
        return 0
    head = row if row.merged_into is None else await session.get(Row, row.merged_into)
    if head is None or head.status != "dead":
        return 0
    head.status, head.attempts, head.next_attempt_at = "pending", 0, now
    stmt = (
        update(Row).where(Row.merged_into == head.id, Row.status == "dead").values(status="merged")
    )
    followers = await session.execute(stmt)
    return 1 + int(getattr(followers, "rowcount", 0))
