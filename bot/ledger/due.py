"""Instances by deadline: what is coming due, and what has passed it without acceptance."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.ledger.idlists import among
from bot.models import (
    ChatGroup,
    Community,
    CommunityMember,
    Escalation,
    PlanTask,
    TaskInstance,
    Unit,
)

OPEN = ("pending", "returned")  # not reported, or reported and sent back


@dataclass(frozen=True, slots=True)
class Row:
    instance: TaskInstance
    title: str
    unit_id: int
    unit_short: str
    community: str
    group_key: str | None

    @property
    def due(self) -> date:
        return self.instance.due_at.astimezone(SHANGHAI).date()


@dataclass(frozen=True, slots=True)
class Coming:
    """An open instance coming due, as 提示 names it: plain columns, not the ORM object (a
    province has a hundred thousand in a reminder window)."""

    id: int
    no: int
    status: str
    due: date  # the deadline's day in Beijing
    title: str
    unit_id: int
    unit_short: str
    group_key: str


@dataclass(frozen=True, slots=True)
class Window:
    """The instances in a reminder window, by id and deadline day, in post order: two flat
    columns (8 bytes an id, a pointer a day), for a province has a hundred thousand."""

    ids: array[int] = field(default_factory=lambda: array("q"))
    days: list[date] = field(default_factory=list)

    def part(self, first: int, size: int) -> list[tuple[int, date]]:
        last = first + size
        return list(zip(self.ids[first:last], self.days[first:last], strict=True))

    def __len__(self) -> int:
        return len(self.ids)


async def coming_due(session: AsyncSession, first: date, last: date) -> Window:
    """The open instances whose deadline day lies in [first, last], of active units in a
    community with a group, in post order: their ids and days only (``coming`` reads the
    rest a part at a time)."""
    start = datetime.combine(first, time.min, SHANGHAI)
    end = datetime.combine(last, time.max, SHANGHAI)
    stmt = _in_post_order(
        select(TaskInstance.id, TaskInstance.due_at),
        TaskInstance.status.in_(OPEN),
        TaskInstance.due_at.between(start, end),
        ChatGroup.key.is_not(None),
    )
    day = _deadline_days()
    window = Window()
    result = await session.stream(stmt)  # a part at a time, not 113,400 Rows at once
    async for rows in result.partitions(5000):
        for iid, due_at in rows:
            window.ids.append(iid)
            window.days.append(day(due_at))
    return window


async def coming(session: AsyncSession, ids: Sequence[int]) -> list[Coming]:
    """The instances ``ids`` as 提示 names them, in the order given: those still open."""
    if not ids:
        return []
    rows = await session.execute(
        # By id alone: with the status in the WHERE clause SQLite walks the status index,
        # a third of a province's instances, for each part.
        select(
            TaskInstance.id,
            TaskInstance.no,
            TaskInstance.status,
            TaskInstance.due_at,
            PlanTask.title,
            Unit.id,
            Unit.short_name,
            ChatGroup.key,
        )
        .join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .join(CommunityMember, CommunityMember.unit_id == Unit.id)
        .join(Community, Community.id == CommunityMember.community_id)
        .join(ChatGroup, ChatGroup.id == Community.group_id)
        .where(among(session, TaskInstance.id, ids), Unit.active)
    )
    day = _deadline_days()
    found = {}
    for iid, no, status, due_at, title, unit_id, short, group_key in rows:
        if status in OPEN:
            found[iid] = Coming(iid, no, status, day(due_at), title, unit_id, short, group_key)
    return [found[i] for i in ids if i in found]


async def past_due(session: AsyncSession, now: datetime, *, limit: int | None = None) -> list[Row]:
    """Instances past their deadline with no accepted report: not yet marked overdue (the
    first ``limit`` in post order)."""
    return await _rows(
        session, TaskInstance.status.in_(OPEN), TaskInstance.due_at < now, limit=limit
    )


async def past_due_ids(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """``past_due``'s instances as (id, status), in post order. After a first start late in
    the month every deadline passed is missed at once: a province's hundred thousand as ORM
    objects took 220 MB."""
    stmt = _in_post_order(
        select(TaskInstance.id, TaskInstance.status),
        TaskInstance.status.in_(OPEN),
        TaskInstance.due_at < now,
    )
    found: list[tuple[int, str]] = []
    result = await session.stream(stmt)
    async for rows in result.partitions(5000):
        found.extend((iid, status) for iid, status in rows)
    return found


@dataclass(frozen=True, slots=True)
class Overdue:
    """An overdue instance as 督办 names it: plain columns, not the ORM object (a heavy day
    reads twelve thousand, and an ORM object with its state costs several times a row)."""

    id: int
    no: int
    period: str
    due: date  # the deadline's day in Beijing
    title: str
    unit_id: int
    unit_short: str
    group_key: str | None


async def overdue(
    session: AsyncSession, *, steps_due: Mapping[int, datetime | None] | None = None
) -> list[Overdue]:
    """Overdue instances of active units, by community, deadline, unit and number. With
    ``steps_due`` ({督办 step: the latest deadline late enough for it, None when every overdue
    instance is}), only those with a step reached and not yet taken: a province has tens of
    thousands overdue, and most have climbed as far as they can for now."""
    where = [TaskInstance.status == "overdue"]
    if steps_due is not None:

        def untaken(step: int) -> ColumnElement[bool]:
            return ~exists().where(
                Escalation.subject == "instance",
                Escalation.subject_id == TaskInstance.id,
                Escalation.step == step,
            )

        where.append(
            or_(
                *(
                    untaken(step)
                    if last is None
                    else and_(TaskInstance.due_at <= last, untaken(step))
                    for step, last in steps_due.items()
                )
            )
        )
    stmt = _in_post_order(
        select(
            TaskInstance.id,
            TaskInstance.no,
            TaskInstance.period,
            TaskInstance.due_at,
            PlanTask.title,
            Unit.id,
            Unit.short_name,
            ChatGroup.key,
        ),
        *where,
    )
    day = _deadline_days()
    one = _shared()
    found: list[Overdue] = []
    # A part at a time: the driver's rows for a hundred thousand at once came on top.
    result = await session.stream(stmt)
    async for rows in result.partitions(5000):
        found.extend(
            Overdue(iid, no, one(period), day(due_at), one(title), uid, one(short), one(gkey))
            for iid, no, period, due_at, title, uid, short, gkey in rows
        )
    return found


async def count_overdue(session: AsyncSession) -> int:
    stmt = (
        select(func.count())
        .select_from(TaskInstance)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(Unit.active, TaskInstance.status == "overdue")
    )
    return int(await session.scalar(stmt) or 0)


async def _rows(session: AsyncSession, *where: object, limit: int | None = None) -> list[Row]:
    stmt = _in_post_order(
        select(
            TaskInstance, PlanTask.title, Unit.id, Unit.short_name, Community.name, ChatGroup.key
        ),
        *where,
    )
    rows = (await session.execute(stmt.limit(limit))).all()
    return [
        Row(i, title, uid, short, cname or "", gkey) for i, title, uid, short, cname, gkey in rows
    ]


_V = TypeVar("_V")


def _shared() -> Callable[[_V], _V]:
    """One object per distinct value instead of one per row: the driver makes every string
    anew, and a first start late in the month reads a province's 102,500 overdue instances,
    each naming one of 60 tasks, 20,000 units and 2,500 groups."""
    same: dict[Any, Any] = {}

    def one(value: _V) -> _V:
        found: _V = same.setdefault(value, value)
        return found

    return one


def _deadline_days() -> Callable[[datetime], date]:
    """A deadline's day in Beijing, worked out once per deadline: a few hundred deadlines
    among a hundred thousand instances."""
    days: dict[datetime, date] = {}

    def day(due_at: datetime) -> date:
        found = days.get(due_at)
        if found is None:
            found = days[due_at] = due_at.astimezone(SHANGHAI).date()
        return found

    return day


_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")


def _in_post_order(stmt: _S, *where: Any) -> _S:
    """Instances of active units with their task, unit and community group, in the order the
    posts go out: community, deadline, unit, number."""
    return (
        stmt.join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .outerjoin(Community, Community.id == CommunityMember.community_id)
        .outerjoin(ChatGroup, ChatGroup.id == Community.group_id)
        .where(Unit.active, *where)
        .order_by(Community.id, TaskInstance.due_at, Unit.id, TaskInstance.no)
    )
