"""Task instances: materialised from the plan per unit and period, listed, numbered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

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
class Owed:
    task_id: int
    unit_id: int
    period: str
    due: date


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
    owed = await _owed(session, month, is_workday)
    if not owed:
        return 0
    periods = {o.period for o in owed}
    existing = set(
        (
            await session.execute(
                select(TaskInstance.task_id, TaskInstance.unit_id, TaskInstance.period).where(
                    TaskInstance.period.in_(periods)
                )
            )
        ).all()
    )
    fresh = [o for o in owed if (o.task_id, o.unit_id, o.period) not in existing]
    if not fresh:
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
    rows = []
    for o in sorted(fresh, key=lambda o: (o.unit_id, o.due, o.task_id)):
        numbers[o.unit_id] = numbers.get(o.unit_id, 0) + 1
        rows.append(
            {
                "task_id": o.task_id,
                "unit_id": o.unit_id,
                "period": o.period,
                "no": numbers[o.unit_id],
                "due_at": due_at(o.due),
                "status": "pending",
                "created_at": now,
                "updated_at": now,
            }
        )
    await session.execute(insert(TaskInstance), rows)
    return len(rows)


async def _owed(session: AsyncSession, month: Period, is_workday: IsWorkday) -> list[Owed]:
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
    owed: list[Owed] = []
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
        owners = {"all": units, "leads": leads}.get(task.owners, named.get(task.id, []))
        owed.extend(Owed(task.id, u, period.key, due) for u in owners if u in active)
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
