"""The monthly task breakdown (任务分解): what each community's units owe this month, by task."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy import and_, or_, select
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
    units: list[str] = field(default_factory=list)  # short names of the units that owe it


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
    rows = (
        await session.execute(
            select(CommunityMember.community_id, Unit.short_name, PlanTask, TaskInstance.due_at)
            .join(Unit, Unit.id == CommunityMember.unit_id)
            .join(TaskInstance, TaskInstance.unit_id == Unit.id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(
                Unit.active,
                TaskInstance.status != "excused",
                TaskInstance.period.in_((month_key, quarter_key, year_key)),
                or_(*shown) if len(shown) > 1 else and_(*shown),
            )
            .order_by(TaskInstance.due_at, PlanTask.id, CommunityMember.is_lead.desc(), Unit.id)
        )
    ).all()
    items: dict[int, dict[int, Item]] = defaultdict(dict)
    for community_id, short, task, due_at in rows:
        item = items[community_id].get(task.id)
        if item is None:
            due = due_at.astimezone(SHANGHAI).date()
            item = Item(task.id, task.title, task.cadence, task.owners, task.evidence, due)
            items[community_id][task.id] = item
        item.units.append(short)
    return {cid: list(by_task.values()) for cid, by_task in items.items()}
