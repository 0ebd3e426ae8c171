"""Finding the lanes' heads and claiming them: a claim pass is a few statements, whatever the
number of lanes or of heads it takes.

A lane is one chat (platform, chat_id); its head is its oldest live row (pending or sending),
and only a head that is pending and due may be claimed, so one chat's messages are shown in
the order they were queued. ``look`` finds the ids of heads ready now, oldest first;
``lock`` reads a batch of them afresh, checking in the same statement that each still leads
its lane (an admin may have re-queued an older message of that chat since: 重发), and
``claim`` takes them in one conditional UPDATE. A head its robot's window has no room for is
``park``-ed until the window frees, so that later looks pass over it inside the database
instead of reading it again and again.

Every statement is built once, here, with bound parameters: building a SQLAlchemy statement
costs more than running a short one. Each function runs inside the caller's transaction; the
worker keeps those short and never holds one open across an HTTP call. On PostgreSQL ``lock``
takes each head with ``FOR UPDATE SKIP LOCKED``, so several instances share the table without
taking the same row or waiting for one another. SQLite ignores the clause; there the claim's
conditional UPDATE decides, its single writer making a second claimer find the row taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from bot.models import OutboxMessage as Row

LIVE = ("pending", "sending")  # states that hold a lane
FOLLOWER_LOOKAHEAD = 100
LOOK_LIMIT = 1000  # heads remembered per look: bounded memory, and no long stall of the loop

OUTBOX = cast(Table, Row.__table__)
_c = OUTBOX.c
_older = aliased(Row, name="older")
_LEADS = ~exists().where(
    _older.status.in_(LIVE),
    _older.platform == Row.platform,
    _older.chat_id == Row.chat_id,
    _older.id < Row.id,
)
_AT = _c.next_attempt_at.type  # UTCDateTime: a bound time is stored as the columns store it
_DUE = Row.next_attempt_at <= bindparam("now", type_=_AT)
_IDS: BindParameter[int] = bindparam("ids", expanding=True)

# Per lane its oldest pending row, by one pass over ix_outbox_lane (no probe per row), kept
# when it is due and no older row of its lane is being sent.
_pending = (
    select(func.min(Row.id).label("id"))
    .where(Row.status == "pending")
    .group_by(Row.platform, Row.chat_id)
    .subquery("lane_heads")
)
_sending = aliased(Row, name="sending")
_LOOK = (
    select(Row.id)
    .join(_pending, Row.id == _pending.c.id)
    .where(
        _DUE,
        ~exists().where(
            _sending.status == "sending",
            _sending.platform == Row.platform,
            _sending.chat_id == Row.chat_id,
            _sending.id < Row.id,
        ),
    )
    .order_by(Row.id)
    .limit(LOOK_LIMIT)
)


def by_id(status: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[str]:
    """``status`` as a plain value, so that a statement about rows named by id (or by
    ``merged_into``) finds them by that key: offered ``status = …`` SQLite reads every row of
    that status through ix_outbox_status_next instead, which grows with the queue."""
    return status.concat("")


_LOCK = (
    select(Row)
    .where(Row.id.in_(_IDS), by_id(Row.status) == "pending", _DUE, _LEADS)
    .order_by(Row.id)
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(OUTBOX)
    .where(_c.id.in_(_IDS), by_id(_c.status) == "pending")
    .values(
        status="sending", claimed_at=bindparam("at", type_=_AT), claimed_by=bindparam("instance")
    )
    .returning(_c.id)
)
_MERGE = (
    update(OUTBOX)
    .where(_c.id.in_(_IDS), by_id(_c.status).in_(("pending", "merged")))
    .values(status="merged", merged_into=bindparam("head"))
)
_PARK = (
    update(OUTBOX)
    .where(_c.id == bindparam("head"), _c.status == "pending")
    .values(next_attempt_at=bindparam("until", type_=_AT))
)
_BOUND = (
    select(Row).where(Row.merged_into.in_(_IDS), by_id(Row.status) == "merged").order_by(Row.id)
)
_BEHIND = (
    select(Row)
    .where(
        Row.platform == bindparam("platform"),
        Row.chat_id == bindparam("chat_id"),
        Row.status == "pending",
        Row.id > bindparam("head"),
    )
    .order_by(Row.id)
    .limit(FOLLOWER_LOOKAHEAD)
)
_NEXT_RETRY = select(func.min(Row.next_attempt_at)).where(
    Row.status == "pending", Row.next_attempt_at > bindparam("now", type_=_AT)
)
_stale = OUTBOX.alias("stale")
_RELEASE_EXPIRED = (
    update(OUTBOX)
    .where(
        _c.status == "sending",
        _c.id.in_(
            select(_stale.c.id)
            .where(
                _stale.c.status == "sending",
                or_(_stale.c.claimed_by.is_(None), _stale.c.claimed_by != bindparam("instance")),
                or_(
                    _stale.c.claimed_at.is_(None),
                    _stale.c.claimed_at <= bindparam("before", type_=_AT),
                ),
            )
            .with_for_update(skip_locked=True)
        ),
    )
    .values(status="pending", claimed_at=None, claimed_by=None)
    .returning(_c.id)
)
_IN_FLIGHT = select(Row).where(Row.status == "sending").with_for_update(skip_locked=True)
_RELEASE = (
    update(OUTBOX)
    .where(_c.id.in_(_IDS), by_id(_c.status) == "sending")
    .values(status="pending", claimed_at=None, claimed_by=None)
)


async def look(session: AsyncSession, now: datetime) -> list[int]:
    """Ids of the heads that are pending and due now, oldest first (at most LOOK_LIMIT).

    A lane whose head is being sent, waits for a retry or is parked yields nothing: the
    database passes over it in its one pass over the pending rows' index entries, and only
    heads that can go now come back to be read and tried."""
    return list((await session.scalars(_LOOK, {"now": now})).all())


async def lock(session: AsyncSession, ids: Sequence[int], now: datetime) -> list[Row]:
    """Those of ``ids`` that still lead their lanes and are pending and due, locked for this
    transaction and read afresh; one held by another instance is skipped, never waited for."""
    if not ids:
        return []
    return list((await session.scalars(_LOCK, {"ids": list(ids), "now": now})).all())


async def bound_followers(session: AsyncSession, head_ids: Sequence[int]) -> dict[int, list[Row]]:
    """Rows already coalesced into each of ``head_ids`` by an earlier claim, in order."""
    found: dict[int, list[Row]] = {}
    if head_ids:
        for row in (await session.scalars(_BOUND, {"ids": list(head_ids)})).all():
            found.setdefault(cast(int, row.merged_into), []).append(row)
    return found


async def candidates(session: AsyncSession, head: Row, now: datetime) -> list[Row]:
    """The rows right behind ``head`` in its lane that may join it, in order.

    Unlocked: only the instance holding a lane's head touches the rows behind it."""
    params = {"platform": head.platform, "chat_id": head.chat_id, "head": head.id}
    found = []
    for row in (await session.scalars(_BEHIND, params)).all():
        fresh = row.attempts == 0 and row.sent_parts == 0 and row.next_attempt_at <= now
        if not (row.mergeable and row.kind == head.kind and fresh):
            break  # it must go out on its own, and nothing behind it may overtake it
        found.append(row)
    return found


async def claim(
    session: AsyncSession, ids: Sequence[int], *, instance: str, now: datetime
) -> set[int]:
    """Take the heads ``ids`` that are still pending; the ids taken.

    A conditional UPDATE, so that two claimers can never both win: on SQLite, where the lock
    is a no-op, the second waits for the first's commit and then finds the row taken."""
    if not ids:
        return set()
    params = {"ids": list(ids), "at": now, "instance": instance}
    return set((await session.scalars(_CLAIM, params)).all())


async def merge(session: AsyncSession, head_id: int, followers: Sequence[int]) -> None:
    """Bind ``followers`` to the claimed head ``head_id``: they share its post and its fate."""
    await session.execute(_MERGE, {"ids": list(followers), "head": head_id})


async def park(session: AsyncSession, head_id: int, until: datetime) -> None:
    """Keep a head its robot has no room for out of the looks until ``until``; nothing else
    about it changes (no attempt is counted), and its lane waits behind it."""
    await session.execute(_PARK, {"head": head_id, "until": until})


async def next_retry(session: AsyncSession, now: datetime) -> datetime | None:
    """When the earliest waiting retry (or parked head) falls due."""
    return cast(datetime | None, await session.scalar(_NEXT_RETRY, {"now": now}))


async def release_expired(session: AsyncSession, *, instance: str, before: datetime) -> list[int]:
    """Put back in the queue other instances' claims made before ``before``; their ids."""
    params = {"instance": instance, "before": before}
    return sorted((await session.scalars(_RELEASE_EXPIRED, params)).all())


async def release(session: AsyncSession, abandoned: Callable[[Row], bool]) -> list[int]:
    """Put the rows in flight that ``abandoned`` picks back in the queue; their ids."""
    ids = [row.id for row in (await session.scalars(_IN_FLIGHT)).all() if abandoned(row)]
    if ids:
        await session.execute(_RELEASE, {"ids": ids})
    return ids
