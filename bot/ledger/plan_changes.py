"""Changes to the annual plan during the year, made by admins in chat (任务新增/修改/取消).

Tasks created here have source "chat" and keys C001, C002 …, which the configuration sync
leaves alone. Instances already owed follow a change only where it is still useful: the
current and later periods, and never an instance already accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.duerules import DueRule, Period, PeriodCadence
from bot.ledger.instances import IsWorkday, due_at, materialise
from bot.models import Area, PlanTask, PlanTaskUnit, TaskInstance, Unit

OPEN = ("pending", "submitted", "returned", "overdue")
CANCELLED_REASON = "任务已取消"
LATE_START_REASON = "任务新增时本期截止日期已过"


async def find_task(session: AsyncSession, key: str) -> PlanTask | None:
    return await session.scalar(
        select(PlanTask).where(func.upper(PlanTask.key) == key.strip().upper())
    )


async def areas(session: AsyncSession) -> list[Area]:
    return list((await session.scalars(select(Area).order_by(Area.position))).all())


async def next_key(session: AsyncSession) -> str:
    keys = set((await session.scalars(select(PlanTask.key))).all())
    n = sum(1 for k in keys if k.startswith("C")) + 1
    while f"C{n:03d}" in keys:
        n += 1
    return f"C{n:03d}"


@dataclass(frozen=True, slots=True)
class Added:
    task: PlanTask
    instances: int  # owed this month (and its quarter and year)
    late_start: int  # of them, excused because their deadline had passed already


async def add(
    session: AsyncSession,
    *,
    title: str,
    rule: DueRule,
    area_id: int,
    owners: str,
    unit_ids: Sequence[int],
    now: datetime,
    actor: str,
    is_workday: IsWorkday,
) -> Added:
    task = PlanTask(
        key=await next_key(session),
        title=title,
        area_id=area_id,
        cadence=rule.cadence,
        due_rule=rule.text,
        owners=owners,
        source="chat",
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    session.add_all(PlanTaskUnit(task_id=task.id, unit_id=u) for u in unit_ids)
    await session.flush()
    # Units should see the new task in 本月任务 at once, not after next month's breakdown.
    await materialise(
        session, Period.containing("monthly", now.date()), now=now, is_workday=is_workday
    )
    owed = list(
        (await session.scalars(select(TaskInstance).where(TaskInstance.task_id == task.id))).all()
    )
    # A deadline already past would make the units overdue the moment the task exists; the
    # instance stays (excused) so that a restart's materialisation does not create it again.
    late = [i for i in owed if i.due_at < now]
    for instance in late:
        instance.status, instance.excused_reason = "excused", LATE_START_REASON
    audit.record(
        session,
        at=now,
        actor=actor,
        action="task.create",
        entity="task",
        key=task.key,
        after={
            "title": title,
            "cadence": rule.cadence,
            "due_rule": rule.text,
            "owners": owners,
            "units": list(unit_ids),
            "area_id": area_id,
            "instances": len(owed),
            "excused_late_start": len(late),
        },
    )
    return Added(task, len(owed), len(late))


def _current_or_later(task: PlanTask, now: datetime) -> str:
    cadence = "monthly" if task.cadence == "once" else cast(PeriodCadence, task.cadence)
    return Period.containing(cadence, now.date()).key


async def _open_instances(
    session: AsyncSession, task: PlanTask, now: datetime
) -> list[TaskInstance]:
    return list(
        (
            await session.scalars(
                select(TaskInstance).where(
                    TaskInstance.task_id == task.id,
                    TaskInstance.status.in_(OPEN),
                    TaskInstance.period >= _current_or_later(task, now),
                )
            )
        ).all()
    )


async def change_due(
    session: AsyncSession,
    task: PlanTask,
    rule: DueRule,
    *,
    now: datetime,
    actor: str,
    is_workday: IsWorkday,
) -> int:
    """Give the task a new due rule of the same cadence; re-date its open instances of the
    current and later periods and return how many."""
    before = task.due_rule
    task.due_rule, task.updated_at = rule.text, now
    redated = 0
    for instance in await _open_instances(session, task, now):
        if rule.cadence == "once":
            instance.period = rule.period_of_once().key
            day = rule.due_date(None, is_workday)
        else:
            day = rule.due_date(Period.parse(instance.period), is_workday)
        instance.due_at, instance.updated_at = due_at(day), now
        if instance.status == "overdue" and instance.due_at > now:
            instance.status = "pending"
        redated += 1
    audit.record(
        session,
        at=now,
        actor=actor,
        action="task.update",
        entity="task",
        key=task.key,
        before={"due_rule": before},
        after={"due_rule": rule.text, "instances_redated": redated},
    )
    return redated


async def set_fields(
    session: AsyncSession, task: PlanTask, values: dict[str, object], *, now: datetime, actor: str
) -> None:
    """Change plain fields (title, area_id) of a task."""
    before = {k: getattr(task, k) for k in values}
    for k, v in values.items():
        setattr(task, k, v)
    task.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="task.update",
        entity="task",
        key=task.key,
        before=before,
        after=dict(values),
    )


async def cancel(
    session: AsyncSession, task: PlanTask, *, reason: str, now: datetime, actor: str
) -> int:
    """Stop the task; release units from what they still owe of the current and later periods
    (reports awaiting review stay for their verdict) and return how many were released."""
    task.active, task.cancelled_at, task.updated_at = False, now, now
    excused = 0
    for instance in await _open_instances(session, task, now):
        if instance.status == "submitted":
            continue
        instance.status, instance.excused_reason = "excused", CANCELLED_REASON
        instance.updated_at = now
        excused += 1
    audit.record(
        session,
        at=now,
        actor=actor,
        action="task.cancel",
        entity="task",
        key=task.key,
        before={"active": True},
        after={"active": False, "instances_excused": excused},
        detail=reason[:500],
    )
    return excused


@dataclass(frozen=True, slots=True)
class Planned:
    task: PlanTask
    area: str
    units: list[str]  # short names, for owners "named"


async def plan(session: AsyncSession) -> list[Planned]:
    """Every task, active first, in the plan's order."""
    rows = (
        await session.execute(
            select(PlanTask, Area.name)
            .join(Area, Area.id == PlanTask.area_id)
            .order_by(PlanTask.active.desc(), PlanTask.id)
        )
    ).all()
    named: dict[int, list[str]] = {}
    for task_id, short in await session.execute(
        select(PlanTaskUnit.task_id, Unit.short_name)
        .join(Unit, Unit.id == PlanTaskUnit.unit_id)
        .order_by(Unit.id)
    ):
        named.setdefault(task_id, []).append(short)
    return [Planned(t, area, named.get(t.id, [])) for t, area in rows]
