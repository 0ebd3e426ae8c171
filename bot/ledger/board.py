"""What the dashboard lists beside the figures: a period's overdue instances with whom to call
about them, and the problems not yet closed (销号). Lists are capped; the totals are not."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.ledger.idlists import among
from bot.ledger.problems import open_problems
from bot.ledger.progress import CommunityRef, is_overdue
from bot.models import Community, Person, PlanTask, Role, TaskInstance, Unit


@dataclass(frozen=True, slots=True)
class OverdueRow:
    unit: str  # short name
    no: int
    title: str
    due_at: datetime
    days: int  # calendar days since the deadline day
    liaisons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProblemRow:
    id: int
    unit: str
    description: str
    deadline: datetime
    days_left: int  # negative once the deadline has passed
    reports: bool  # any rectification progress reported yet

    @property
    def status(self) -> str:
        if self.days_left < 0:
            return "已超期"
        return "整改中" if self.reports else "待整改"


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    rows: list[T]
    total: int  # how many there are, shown or not


async def community_by_key(session: AsyncSession, key: str) -> CommunityRef | None:
    row = (
        await session.execute(
            select(Community.id, Community.key, Community.name).where(
                Community.key == key, Community.active
            )
        )
    ).first()
    return CommunityRef(*row) if row else None


async def overdue_due_between(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    unit_ids: Collection[int] | None,
    limit: int,
) -> Listing[OverdueRow]:
    """Instances due in [start, end) and overdue now, oldest deadline first."""
    where = [
        is_overdue(now),
        TaskInstance.due_at >= start,
        TaskInstance.due_at < end,
        Unit.active,
    ]
    if unit_ids is not None:
        where.append(among(session, TaskInstance.unit_id, unit_ids))
    total = await session.scalar(
        select(func.count())
        .select_from(TaskInstance)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(*where)
    )
    rows = (
        await session.execute(
            select(TaskInstance.unit_id, Unit.short_name, TaskInstance.no, PlanTask.title)
            .add_columns(TaskInstance.due_at)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(*where)
            .order_by(TaskInstance.due_at, TaskInstance.unit_id, TaskInstance.no)
            .limit(limit)
        )
    ).all()
    names = await liaison_names(session, {r[0] for r in rows})
    today = now.astimezone(SHANGHAI).date()
    return Listing(
        [
            OverdueRow(short, no, title, due, _days(today, due), names.get(unit_id, ()))
            for unit_id, short, no, title, due in rows
        ],
        total or 0,
    )


async def liaison_names(
    session: AsyncSession, unit_ids: Collection[int]
) -> dict[int, tuple[str, ...]]:
    if not unit_ids:
        return {}
    rows = await session.execute(
        select(Role.unit_id, Person.name)
        .join(Person, Person.id == Role.person_id)
        .where(Role.role == "liaison", among(session, Role.unit_id, unit_ids), Person.active)
        .order_by(Role.unit_id, Person.id)
    )
    found: dict[int, tuple[str, ...]] = {}
    for unit_id, name in rows.all():
        if unit_id is not None:
            found[unit_id] = (*found.get(unit_id, ()), name)
    return found


async def open_problem_rows(
    session: AsyncSession, unit_ids: Collection[int] | None, *, today: date, limit: int
) -> Listing[ProblemRow]:
    """Problems still open, soonest deadline first."""
    found = await open_problems(session, unit_ids)
    rows = [
        ProblemRow(
            p.problem.id,
            p.unit.short,
            p.problem.description,
            p.problem.deadline,
            p.days_left(today),
            p.latest is not None,
        )
        for p in found[:limit]
    ]
    return Listing(rows, len(found))


def _days(today: date, due: datetime) -> int:
    return (today - due.astimezone(SHANGHAI).date()).days
