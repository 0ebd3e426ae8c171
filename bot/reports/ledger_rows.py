"""What the 台账 workbook reads: the units in scope, then per batch of units their task
instances, check-ins, reviews, evidence and problems, each in one set-based query.

An instance belongs to the period its deadline falls in (as in ``bot.ledger.stats``); a
problem belongs to every period it was open in: found before the period's end and not closed
before its start. Only active units are read, so the sheets add up to the statistics.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.ledger.idlists import among
from bot.ledger.stats import NO_COMMUNITY
from bot.models import (
    Attachment,
    CheckIn,
    Community,
    CommunityMember,
    Person,
    PlanTask,
    Problem,
    Rectification,
    ReportPublication,
    Review,
    TaskInstance,
    Unit,
)

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
BATCH = 500  # units per round of queries: bounded memory


@dataclass(frozen=True, slots=True)
class UnitRow:
    id: int
    short: str
    community: str  # 未编入共同体 when the unit is in none


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of units and everything the sheets show about them."""

    units: dict[int, UnitRow]
    instances: Sequence[Row[*tuple[Any, ...]]]
    checkins: Sequence[Row[*tuple[Any, ...]]]
    reviews: dict[int, list[Row[*tuple[Any, ...]]]]  # check-in id → its reviews, oldest first
    evidence: dict[int, list[Row[*tuple[Any, ...]]]]  # check-in id → its attachments, in order
    problems: Sequence[Row[*tuple[Any, ...]]]


async def units_in_scope(session: AsyncSession, unit_ids: Collection[int] | None) -> list[UnitRow]:
    """Active units in ledger order: by community (lead first), units in no community last."""
    stmt = (
        select(Unit.id, Unit.short_name, Community.id, Community.name, CommunityMember.is_lead)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .outerjoin(Community, and_(Community.id == CommunityMember.community_id, Community.active))
        .where(Unit.active)
    )
    if unit_ids is not None:
        stmt = stmt.where(among(session, Unit.id, unit_ids))
    rows = list((await session.execute(stmt)).all())
    rows.sort(key=lambda r: (r[2] is None, r[2] or 0, not r[4], r[0]))
    return [UnitRow(uid, short, name or NO_COMMUNITY) for uid, short, _, name, _ in rows]


async def read_batch(
    session: AsyncSession, units: Sequence[UnitRow], start: datetime, end: datetime
) -> Batch:
    ids = [u.id for u in units]

    def scoped(stmt: _S) -> _S:
        return stmt.where(
            among(session, TaskInstance.unit_id, ids),
            TaskInstance.due_at >= start,
            TaskInstance.due_at < end,
        )

    instances = await session.execute(
        scoped(
            select(
                TaskInstance.id,
                TaskInstance.unit_id,
                TaskInstance.no,
                PlanTask.title,
                TaskInstance.period,
                TaskInstance.due_at,
                TaskInstance.status,
                TaskInstance.excused_reason,
            ).join(PlanTask, PlanTask.id == TaskInstance.task_id)
        ).order_by(TaskInstance.unit_id, TaskInstance.no)
    )
    checkins = await session.execute(
        scoped(
            select(
                CheckIn.id,
                CheckIn.instance_id,
                TaskInstance.unit_id,
                TaskInstance.no,
                PlanTask.title,
                Person.name,
                CheckIn.on_behalf,
                CheckIn.text,
                CheckIn.status,
                CheckIn.late,
                CheckIn.submitted_at,
                CheckIn.updated_at,
            )
            .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .join(Person, Person.id == CheckIn.reporter_id)
        ).order_by(TaskInstance.unit_id, TaskInstance.no, CheckIn.id)
    )
    reviews = await session.execute(
        scoped(
            select(Review.checkin_id, Review.decision, Review.reason, Person.name)
            .join(CheckIn, CheckIn.id == Review.checkin_id)
            .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
            .join(Person, Person.id == Review.reviewer_id)
        ).order_by(Review.id)
    )
    evidence = await session.execute(
        scoped(
            select(Attachment.checkin_id, Attachment.kind, Attachment.ref, Attachment.platform)
            .join(CheckIn, CheckIn.id == Attachment.checkin_id)
            .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
        ).order_by(Attachment.id)
    )
    problems = await session.execute(
        select(
            Problem.id,
            Problem.unit_id,
            Problem.description,
            Problem.found_at,
            Problem.deadline,
            Problem.status,
            Problem.closed_at,
            Person.name,
            Rectification.at,
            Rectification.text,
        )
        .outerjoin(Rectification, Rectification.problem_id == Problem.id)
        .outerjoin(Person, Person.id == Rectification.reporter_id)
        .where(
            among(session, Problem.unit_id, ids),
            Problem.found_at < end,
            or_(Problem.closed_at.is_(None), Problem.closed_at >= start),
        )
        .order_by(Problem.unit_id, Problem.id, Rectification.id)
    )
    return Batch(
        {u.id: u for u in units},
        _in_unit_order(instances.all(), units),
        _in_unit_order(checkins.all(), units, column=2),
        _grouped(reviews.all()),
        _grouped(evidence.all()),
        _in_unit_order(problems.all(), units),
    )


async def most_evidence(
    session: AsyncSession, unit_ids: Collection[int] | None, start: datetime, end: datetime
) -> int:
    """The most attachments any check-in in scope has: how many evidence columns to make."""
    per_checkin = (
        select(func.count().label("n"))
        .select_from(Attachment)
        .join(CheckIn, CheckIn.id == Attachment.checkin_id)
        .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
        .join(Unit, and_(Unit.id == TaskInstance.unit_id, Unit.active))
        .where(TaskInstance.due_at >= start, TaskInstance.due_at < end)
        .group_by(Attachment.checkin_id)
    )
    if unit_ids is not None:
        per_checkin = per_checkin.where(among(session, TaskInstance.unit_id, unit_ids))
    return int(await session.scalar(select(func.max(per_checkin.subquery().c.n))) or 0)


async def is_published(session: AsyncSession, period_key: str) -> bool:
    """Whether an admin approved (发布) a report for the period: rankings may then be shown."""
    found = await session.scalar(
        select(ReportPublication.id).where(ReportPublication.period == period_key).limit(1)
    )
    return found is not None


def _in_unit_order(
    rows: Sequence[Row[*tuple[Any, ...]]], units: Sequence[UnitRow], column: int = 1
) -> list[Row[*tuple[Any, ...]]]:
    """Rows (ordered by unit id, then as they came) in the batch's ledger order of units."""
    place = {u.id: i for i, u in enumerate(units)}
    return sorted(rows, key=lambda r: place[r[column]])  # stable: keeps the order within a unit


def _grouped(rows: Sequence[Row[*tuple[Any, ...]]]) -> dict[int, list[Row[*tuple[Any, ...]]]]:
    grouped: dict[int, list[Row[*tuple[Any, ...]]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return grouped
