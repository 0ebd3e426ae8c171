"""Task instances: materialised from the plan per unit and period, listed, numbered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, exists, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from bot.clock import SHANGHAI
from bot.duerules import DueRule, Period, parse_due_rule, weekday_is_workday
from bot.models import CommunityMember, PlanTask, PlanTaskUnit, TaskInstance, Unit

IsWorkday = Callable[[date], bool]


def due_at(day: date) -> datetime:
    """A deadline day ends at midnight Beijing time: "25日前" includes the 25th."""
    return datetime.combine(day, time(23, 59, 59), SHANGHAI)


def view_periods(month: Period) -> tuple[str, str, str]:
    """The periods a month's list shows: the month, its quarter and its year."""
    first = month.first_day
    return (
        month.key,
        Period.containing("quarterly", first).key,
        Period.containing("yearly", first).key,
    )


@dataclass(frozen=True, slots=True)
class Owing:
    """One task's instances for one period, all due the same day, owed by `owners`: all
    (active units), leads (of communities) or named (the task's own units)."""

    task_id: int
    period: str
    due: date
    owners: str


async def materialise(
    session: AsyncSession,
    month: Period,
    *,
    now: datetime,
    is_workday: IsWorkday = weekday_is_workday,
) -> int:
    """Create the instances owed in `month` that do not exist yet; return how many.

    Monthly tasks for the month, quarterly ones for its quarter, yearly ones for its year, and
    one-off tasks due in it; none whose deadline fell before the month began. Idempotent: a
    second call creates nothing.

    A province's month is 700,000 instances. The database makes them, one INSERT … SELECT per
    task and period, from the units that owe it: no row passes through Python, nothing is held
    in memory, and the work is the database's own writing.
    """
    owing = await _owed(session, month, is_workday)
    complete = await _complete(session, owing)
    created = 0
    # Task by task in deadline order, so each unit's new numbers follow its deadlines.
    for o in sorted(owing, key=lambda o: (o.due, o.task_id)):
        found = complete.get((o.task_id, o.period))
        if found is not True:
            created += await _create(session, o, now, some_exist=found is not None)
    return created


_COLUMNS = ("task_id", "unit_id", "period", "no", "due_at", "status", "created_at", "updated_at")


async def _create(session: AsyncSession, o: Owing, now: datetime, *, some_exist: bool) -> int:
    """One task's instances for one period, for the units owing it that lack one."""
    table = cast(Table, TaskInstance.__table__)
    taken = aliased(TaskInstance)
    # Each unit's next number: its highest so far plus one (the (unit_id, no) key serves it);
    # earlier tasks' rows of this call are already there.
    last_no = (
        select(func.coalesce(func.max(taken.no), 0)).where(taken.unit_id == Unit.id)
    ).scalar_subquery()
    where: list[ColumnElement[bool] | InstrumentedAttribute[bool]] = [Unit.active]
    if o.owners == "leads":
        where.append(exists().where(CommunityMember.unit_id == Unit.id, CommunityMember.is_lead))
    elif o.owners != "all":
        where.append(
            exists().where(PlanTaskUnit.task_id == o.task_id, PlanTaskUnit.unit_id == Unit.id)
        )
    if some_exist:
        where.append(
            ~exists().where(
                taken.task_id == o.task_id, taken.period == o.period, taken.unit_id == Unit.id
            )
        )
    rows = (
        select(
            literal(o.task_id, table.c.task_id.type),
            Unit.id,
            literal(o.period, table.c.period.type),
            last_no + 1,
            literal(due_at(o.due), table.c.due_at.type),
            literal("pending", table.c.status.type),
            literal(now, table.c.created_at.type),
            literal(now, table.c.updated_at.type),
        )
        .where(*where)
        .order_by(Unit.id)
    )
    result = await session.execute(insert(table).from_select(_COLUMNS, rows))
    return cast(CursorResult[Any], result).rowcount


async def _complete(session: AsyncSession, owing: list[Owing]) -> dict[tuple[int, str], bool]:
    """(task, period) → True when complete, False when some instances exist; absent: none.

    Every start asks again, so the database counts, per task and period, the instances of
    active units: a task every active unit owes with as many instances is complete (one
    instance per unit, task and period), and nothing of it is written or read again."""
    periods = {o.period for o in owing}
    if not periods:
        return {}
    counted = await session.execute(
        select(TaskInstance.task_id, TaskInstance.period, func.count())
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(Unit.active, TaskInstance.period.in_(periods))
        .group_by(TaskInstance.task_id, TaskInstance.period)
    )
    counts = {(task_id, period): n for task_id, period, n in counted}
    active = await session.scalar(select(func.count()).select_from(Unit).where(Unit.active))
    owners = {(o.task_id, o.period): o.owners for o in owing}
    return {key: n == active and owners.get(key) == "all" for key, n in counts.items() if n}


async def _owed(session: AsyncSession, month: Period, is_workday: IsWorkday) -> list[Owing]:
    tasks = (await session.scalars(select(PlanTask).where(PlanTask.active))).all()
    owed: list[Owing] = []
    for task in tasks:
        rule = parse_due_rule(task.due_rule)
        period = _period_for(rule, month)
        if period is None:
            continue
        due = rule.due_date(None if rule.cadence == "once" else period, is_workday)
        if due < month.first_day:
            # Due before this month began: a deployment that starts mid-year does not inherit
            # the year's past deadlines as overdue work.
            continue
        owed.append(Owing(task.id, period.key, due, task.owners))
    return owed


def _period_for(rule: DueRule, month: Period) -> Period | None:
    if rule.cadence == "monthly":
        return month
    if rule.cadence == "once":
        return month if rule.period_of_once() == month else None
    return Period.containing(rule.cadence, month.first_day)


@dataclass(frozen=True, slots=True)
class Listed:
    instance: TaskInstance
    task: PlanTask


async def unit_instances(session: AsyncSession, unit_id: int, month: Period) -> list[Listed]:
    rows = (
        await session.execute(
            select(TaskInstance, PlanTask)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(TaskInstance.unit_id == unit_id, TaskInstance.period.in_(view_periods(month)))
            .order_by(TaskInstance.due_at, TaskInstance.no)
        )
    ).all()
    return [Listed(i, t) for i, t in rows]


async def instance_by_no(session: AsyncSession, unit_id: int, no: int) -> Listed | None:
    row = (
        await session.execute(
            select(TaskInstance, PlanTask)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(TaskInstance.unit_id == unit_id, TaskInstance.no == no)
        )
    ).first()
    return Listed(row[0], row[1]) if row else None
