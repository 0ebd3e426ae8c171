"""Task instances: materialised from the plan per unit and period, listed, numbered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import cast

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulk import insert_rows
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
    """One task's instances for one period: the units that owe it, all due the same day."""

    task_id: int
    period: str
    due: date
    units: list[int]


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
    """
    owing = await _owed(session, month, is_workday)
    if not any(o.units for o in owing):
        return 0
    lacking = await _lacking(session, owing)
    if not lacking:
        return 0
    numbers = dict(
        (
            await session.execute(
                select(TaskInstance.unit_id, func.max(TaskInstance.no)).group_by(
                    TaskInstance.unit_id
                )
            )
        ).all()
    )

    # Task by task in deadline order, so each unit's new numbers follow its deadlines. A
    # province's month is 700,000 instances: they stream to the database as they are made.
    def rows() -> Iterator[tuple[object, ...]]:
        for o in sorted(owing, key=lambda o: (o.due, o.task_id)):
            deadline = due_at(o.due)
            for unit in lacking.get((o.task_id, o.period), ()):
                numbers[unit] = no = numbers.get(unit, 0) + 1
                yield (o.task_id, unit, o.period, no, deadline, "pending", now, now)

    return await insert_rows(session, cast(Table, TaskInstance.__table__), _COLUMNS, rows())


_COLUMNS = ("task_id", "unit_id", "period", "no", "due_at", "status", "created_at", "updated_at")


async def _lacking(session: AsyncSession, owing: list[Owing]) -> dict[tuple[int, str], list[int]]:
    """(task, period) → the units owing it that have no instance yet, in `owing`'s order; only
    entries that lack any.

    A province's month is some 700,000 instances, and every start asks again. So the database
    first counts, per task and period, the instances of active units: a task that every active
    unit owes and that has as many is complete (one instance per unit, task and period), and
    none of its rows is read. The others are read a task at a time."""
    periods = {o.period for o in owing}
    counted = await session.execute(
        select(TaskInstance.task_id, TaskInstance.period, func.count())
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(Unit.active, TaskInstance.period.in_(periods))
        .group_by(TaskInstance.task_id, TaskInstance.period)
    )
    counts = {(task_id, period): n for task_id, period, n in counted}
    active = await session.scalar(select(func.count()).select_from(Unit).where(Unit.active))
    lacking: dict[tuple[int, str], list[int]] = {}
    for o in owing:
        key = (o.task_id, o.period)
        if not o.units or len(o.units) == active == counts.get(key):
            continue  # owners are active units: as many of them as there are, each with one
        have: set[int] = set()
        if counts.get(key):
            found = select(TaskInstance.unit_id).where(
                TaskInstance.task_id == o.task_id, TaskInstance.period == o.period
            )
            have.update((await session.scalars(found)).all())
        if missing := [u for u in o.units if u not in have]:
            lacking.setdefault(key, []).extend(missing)
    return lacking


async def _owed(session: AsyncSession, month: Period, is_workday: IsWorkday) -> list[Owing]:
    tasks = (await session.scalars(select(PlanTask).where(PlanTask.active))).all()
    units = list((await session.scalars(select(Unit.id).where(Unit.active))).all())
    active = set(units)
    leads = list(
        (
            await session.scalars(select(CommunityMember.unit_id).where(CommunityMember.is_lead))
        ).all()
    )
    named: dict[int, list[int]] = {}
    for task_id, unit_id in await session.execute(
        select(PlanTaskUnit.task_id, PlanTaskUnit.unit_id)
    ):
        named.setdefault(task_id, []).append(unit_id)
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
        if task.owners == "all":
            owners = units  # the active units already
        else:
            mine = leads if task.owners == "leads" else named.get(task.id, [])
            owners = [u for u in mine if u in active]
        owed.append(Owing(task.id, period.key, due, owners))
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
