"""The monthly task breakdown (任务分解): what each community's units owe this month, by task."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.instances import view_periods
from bot.models import CommunityMember, PlanTask, TaskInstance, Unit


@dataclass
class Item:
    task_id: int
    title: str
    cadence: str
    owners: str  # all, leads, named
    evidence: str
    due: date
    count: int = 0  # units that owe it
    # Their short names, for tasks of named units (the others go to all units or all leads,
    # and the post does not list them: a province's month would be 700,000 names).
    units: list[str] = field(default_factory=list)


def _bounds(month: Period) -> tuple[datetime, datetime]:
    return (
        datetime.combine(month.first_day, time.min, SHANGHAI),
        datetime.combine(month.last_day, time.max, SHANGHAI),
    )


async def breakdown(session: AsyncSession, month: Period) -> dict[int, list[Item]]:
    """Per community id, the month's items, earliest deadline first.

    An instance belongs to the month's breakdown when it is the month's own, due within the
    month, or a quarter's (a year's) task in the quarter's (the year's) first month: that is
    when the quarter's work is announced.
    """
    month_key, quarter_key, year_key = view_periods(month)
    start, end = _bounds(month)
    shown = [TaskInstance.period == month_key, TaskInstance.due_at.between(start, end)]
    if month.index in (1, 4, 7, 10):
        shown.append(TaskInstance.period == quarter_key)
    if month.index == 1:
        shown.append(TaskInstance.period == year_key)
    where = (
        Unit.active,
        TaskInstance.status != "excused",
        TaskInstance.period.in_((month_key, quarter_key, year_key)),
        or_(*shown) if len(shown) > 1 else and_(*shown),
    )

    def owing(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .join(Unit, Unit.id == CommunityMember.unit_id)
            .join(TaskInstance, TaskInstance.unit_id == Unit.id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(*where)
        )

    first_due = func.min(TaskInstance.due_at)
    counted = (
        await session.execute(
            owing(
                CommunityMember.community_id, TaskInstance.task_id, first_due, func.count()
            ).group_by(CommunityMember.community_id, TaskInstance.task_id)
        )
    ).all()
    tasks = {t.id: t for t in (await session.scalars(select(PlanTask))).all()}
    items: dict[int, dict[int, Item]] = defaultdict(dict)
    # Earliest deadline first, as each community's posts list them.
    for community_id, task_id, due_at, count in sorted(counted, key=lambda r: (r[2], r[1])):
        task = tasks[task_id]
        due = due_at.astimezone(SHANGHAI).date()
        items[community_id][task_id] = Item(
            task.id, task.title, task.cadence, task.owners, task.evidence, due, count
        )
    named = await session.execute(
        owing(CommunityMember.community_id, TaskInstance.task_id, Unit.short_name)
        .where(PlanTask.owners == "named")
        .order_by(TaskInstance.due_at, PlanTask.id, CommunityMember.is_lead.desc(), Unit.id)
    )
    for community_id, task_id, short in named:
        items[community_id][task_id].units.append(short)
    return {cid: list(by_task.values()) for cid, by_task in items.items()}
