"""The progress matrix: one cell per unit and plan task in a period, coloured by its state.

When several instances of one task fall in the period (a monthly task in a quarter), the cell
shows the one most in need of chasing: overdue, then returned, late, pending, done, excused;
among equals the latest due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.duerules import Period
from bot.ledger.stats import bounds
from bot.ledger.stats_queries import REPORTED, instances
from bot.models import CommunityMember, PlanTask, Unit

CellState = Literal["done", "late", "pending", "returned", "overdue", "excused"]
Colour = Literal["green", "yellow", "red", "grey"]
URGENCY: dict[str, int] = {
    "overdue": 5,
    "returned": 4,
    "late": 3,
    "pending": 2,
    "done": 1,
    "excused": 0,
}
COLOURS: dict[str, Colour] = {
    "done": "green",
    "late": "yellow",
    "pending": "yellow",
    "returned": "yellow",
    "overdue": "red",
    "excused": "grey",
}


@dataclass(frozen=True, slots=True)
class Cell:
    instance_id: int
    no: int
    state: CellState
    due_at: datetime

    @property
    def colour(self) -> Colour:
        return COLOURS[self.state]


@dataclass
class Matrix:
    period: Period
    units: list[tuple[int, str]] = field(default_factory=list)  # (unit id, short name)
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (plan task id, title)
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)  # (unit id, task id)


async def status_matrix(
    session: AsyncSession, period: Period, now: datetime, *, community_id: int | None = None
) -> Matrix:
    start, end = bounds(period.first_day, period.last_day)
    members = select(Unit.id, Unit.short_name).where(Unit.active)
    if community_id is not None:
        members = members.join(
            CommunityMember,
            and_(CommunityMember.unit_id == Unit.id, CommunityMember.community_id == community_id),
        )
    units = [(uid, short) for uid, short in await session.execute(members.order_by(Unit.id))]
    i = instances(start, end, community_id)
    rows = await session.execute(
        select(i.c.id, i.c.unit_id, i.c.task_id, i.c.no, i.c.status, i.c.due_at, i.c.late)
    )
    cells: dict[tuple[int, int], Cell] = {}
    # A second reported check-in of one instance (see stats_queries.instances) only repeats it.
    for instance_id, unit_id, task_id, no, status, due_at, late in rows.all():
        cell = Cell(instance_id, no, cell_state(status, late, due_at, now), due_at)
        held = cells.get((unit_id, task_id))
        if held is None or (URGENCY[cell.state], cell.due_at) > (URGENCY[held.state], held.due_at):
            cells[(unit_id, task_id)] = cell
    task_ids = {task_id for _, task_id in cells}
    tasks: list[tuple[int, str]] = []
    if task_ids:
        titles = select(PlanTask.id, PlanTask.title).where(PlanTask.id.in_(task_ids))
        tasks = [(tid, title) for tid, title in await session.execute(titles.order_by(PlanTask.id))]
    return Matrix(period, units, tasks, cells)


def cell_state(status: str, late: int | None, due_at: datetime, now: datetime) -> CellState:
    """`late` is the reported check-in's late flag, None when nothing is reported."""
    if status == "excused":
        return "excused"
    if status in REPORTED and late is not None:
        return "late" if late else "done"
    if due_at < now:
        return "overdue"
    return "returned" if status == "returned" else "pending"
