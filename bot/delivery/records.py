"""How a send ended, as statements: sent (many posts in one statement), retry later, dead.

Each takes effect only while this instance still holds the claim (``claimed_by``): a claim
released past its lease and taken over by another instance is the other's to record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BindParameter, ColumnElement, Update, bindparam, case, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery.claims import OUTBOX, by_id

ERROR_CHARS = 500

_c = OUTBOX.c
_AT = _c.sent_at.type
_IDS: BindParameter[int] = bindparam("ids", expanding=True)
_UNCLAIMED = (_c.id == bindparam("head"), _c.status == "pending")


def _claimed(**values: Any) -> Update:
    return (
        update(OUTBOX)
        .where(_c.id == bindparam("head"), _c.status == "sending")
        .where(_c.claimed_by == bindparam("instance"))
        .values(claimed_at=None, claimed_by=None, **values)
    )


_RETRY = _claimed(
    status="pending",
    attempts=bindparam("attempts"),
    next_attempt_at=bindparam("until", type_=_AT),
    sent_parts=bindparam("sent_parts"),
    last_error=bindparam("error"),
)
_RETRY_ROUTE = _RETRY.values(route=bindparam("route", type_=_c.route.type))
_DEAD_VALUES = {
    "status": "dead",
    "attempts": bindparam("attempts"),
    "sent_parts": bindparam("sent_parts"),
    "last_error": bindparam("error"),
}
_DEAD = _claimed(**_DEAD_VALUES)
_DEAD_UNCLAIMED = update(OUTBOX).where(*_UNCLAIMED).values(**_DEAD_VALUES)
_FOLLOWERS_DEAD = update(OUTBOX).where(_c.merged_into == bindparam("head")).values(status="dead")


async def mark_sent(
    session: AsyncSession, sent: Mapping[int, datetime], *, instance: str, coalesced: set[int]
) -> set[int]:
    """Mark the heads ``sent`` (id → when it went out) sent, with the rows coalesced into those
    in ``coalesced``; the ids this instance still held."""
    if not sent:
        return set()
    stmt = (
        update(OUTBOX)
        .where(_c.id.in_(_IDS), by_id(_c.status) == "sending")
        .where(_c.claimed_by == bindparam("instance"))
        .values(
            status="sent",
            sent_at=_each(_c.id, sent),
            claimed_at=None,
            claimed_by=None,
            last_error=None,
        )
        .returning(_c.id)
    )
    params = {"ids": list(sent), "instance": instance}
    done = set((await session.scalars(stmt, params)).all())
    carried = {head: at for head, at in sent.items() if head in done and head in coalesced}
    if carried:
        followers = (
            update(OUTBOX)
            .where(_c.merged_into.in_(_IDS))
            .values(status="sent", sent_at=_each(_c.merged_into, carried))
        )
        await session.execute(followers, {"ids": list(carried)})
    return done


def _each(key: ColumnElement[Any], times: Mapping[int, datetime]) -> ColumnElement[Any]:
    """Each row's own time, by ``key``: one statement for posts that went out at different
    moments, as each would have been recorded alone."""
    distinct = set(times.values())
    if len(distinct) == 1:
        return literal(distinct.pop(), _AT)
    return case({k: literal(at, _AT) for k, at in times.items()}, value=key)


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
    """False when this instance no longer holds the claim."""
    params: dict[str, Any] = {
        "head": head_id,
        "instance": instance,
        "attempts": attempts,
        "until": at,
        "sent_parts": sent_parts,
        "error": error[:ERROR_CHARS],
    }
    if route is not None:
        params["route"] = route
    result = await session.execute(_RETRY if route is None else _RETRY_ROUTE, params)
    return _rowcount(result) == 1


async def mark_dead(
    session: AsyncSession,
    head_id: int,
    *,
    instance: str | None,
    attempts: int,
    sent_parts: int,
    error: str,
) -> bool:
    """``instance`` None: the row was never claimed (it could not even be routed). The rows
    coalesced into it die with it."""
    params = {
        "head": head_id,
        "instance": instance,
        "attempts": attempts,
        "sent_parts": sent_parts,
        "error": error[:ERROR_CHARS],
    }
    if instance is None:
        del params["instance"]
    result = await session.execute(_DEAD if instance is not None else _DEAD_UNCLAIMED, params)
    if _rowcount(result) != 1:
        return False
    await session.execute(_FOLLOWERS_DEAD, {"head": head_id})
    return True


def _rowcount(result: Any) -> int:
    return cast(int, result.rowcount)
