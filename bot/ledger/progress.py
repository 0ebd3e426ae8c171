"""Where units stand: a period's tallies per unit and per community, what is overdue, what is
still open. Every count is one grouped query, whatever the number of units or instances."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.ledger.idlists import among
from bot.ledger.instances import Listed
from bot.ledger.people import UnitRef, Who, community_units, unit_ref
from bot.models import Community, CommunityMember, PlanTask, TaskInstance, Unit

OPEN = ("pending", "returned", "overdue")  # still owed: a report may be made
_UNREPORTED = ("pending", "returned")


def is_overdue(now: datetime) -> ColumnElement[bool]:
    """Overdue: marked so by supervision, or past its deadline and neither reported, accepted
    nor excused (supervision may not have run since the deadline passed)."""
    return or_(
        TaskInstance.status == "overdue",
        and_(TaskInstance.status.in_(_UNREPORTED), TaskInstance.due_at < now),
    )


@dataclass(frozen=True, slots=True)
class Tally:
    done: int = 0  # accepted
    submitted: int = 0  # awaiting review
    unreported: int = 0  # pending or returned, deadline not passed
    overdue: int = 0
    excused: int = 0

    @property
    def owed(self) -> int:
        return self.done + self.submitted + self.unreported + self.overdue

    @property
    def rate(self) -> float | None:
        """Accepted out of owed (excused instances are owed by nobody); None when none owed."""
        return self.done / self.owed if self.owed else None


def _tally_columns(now: datetime) -> list[Any]:
    late = is_overdue(now)

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    status = TaskInstance.status
    return [
        count(status == "accepted"),
        count(status == "submitted"),
        count(and_(status.in_(_UNREPORTED), TaskInstance.due_at >= now)),
        count(late),
        count(status == "excused"),
    ]


async def unit_tallies(
    session: AsyncSession, unit_ids: Collection[int], periods: Sequence[str], now: datetime
) -> dict[int, Tally]:
    rows = await session.execute(
        select(TaskInstance.unit_id, *_tally_columns(now))
        .where(among(session, TaskInstance.unit_id, unit_ids), TaskInstance.period.in_(periods))
        .group_by(TaskInstance.unit_id)
    )
    return {unit_id: Tally(*map(int, counts)) for unit_id, *counts in rows}


async def community_tallies(
    session: AsyncSession, periods: Sequence[str], now: datetime
) -> dict[int, Tally]:
    rows = await session.execute(
        select(CommunityMember.community_id, *_tally_columns(now))
        .join(CommunityMember, CommunityMember.unit_id == TaskInstance.unit_id)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(TaskInstance.period.in_(periods), Unit.active)
        .group_by(CommunityMember.community_id)
    )
    return {community_id: Tally(*map(int, counts)) for community_id, *counts in rows}


@dataclass(frozen=True, slots=True)
class CommunityRef:
    id: int
    key: str
    name: str


async def communities(session: AsyncSession) -> list[CommunityRef]:
    rows = await session.execute(
        select(Community.id, Community.key, Community.name)
        .where(Community.active)
        .order_by(Community.id)
    )
    return [CommunityRef(*row) for row in rows]


async def all_units(session: AsyncSession) -> list[UnitRef]:
    """Every active unit, communities' leads first, then in configuration order."""
    rows = await session.execute(
        select(Unit, CommunityMember)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .where(Unit.active)
        .order_by(CommunityMember.community_id, CommunityMember.is_lead.desc(), Unit.id)
    )
    return [unit_ref(u, m) for u, m in rows]


async def units_in_reach(session: AsyncSession, who: Who) -> list[UnitRef]:
    """The units a worker acts for: their own, and the members of communities they lead."""
    reach = {u.id: u for u in who.units}
    for community_id in dict.fromkeys(who.lead_communities):
        for unit in await community_units(session, community_id):
            reach.setdefault(unit.id, unit)
    return list(reach.values())


@dataclass(frozen=True, slots=True)
class OverdueItem:
    unit: UnitRef
    no: int
    title: str
    due_at: datetime

    def days(self, today: date) -> int:
        """Calendar days since the deadline day."""
        return (today - self.due_at.astimezone(SHANGHAI).date()).days


@dataclass(frozen=True, slots=True)
class Overdue:
    items: list[OverdueItem]  # the oldest `cap` of each group, groups in the query's order
    counts: dict[int | None, int]  # group (unit or community id) → how many in all

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def overdue(
    session: AsyncSession,
    *,
    now: datetime,
    unit_ids: Collection[int] | None,
    per: Literal["unit", "community"],
    cap: int,
) -> Overdue:
    """What is overdue (is_overdue) for the units, or everywhere when unit_ids is None: the
    oldest `cap` items of each unit or community and how many each has in all."""
    group = CommunityMember.community_id if per == "community" else TaskInstance.unit_id
    where = [is_overdue(now), Unit.active]
    if unit_ids is not None:
        where.append(among(session, TaskInstance.unit_id, unit_ids))

    def scoped(stmt: Any) -> Any:
        return (
            stmt.select_from(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .outerjoin(CommunityMember, CommunityMember.unit_id == TaskInstance.unit_id)
            .where(*where)
        )

    counts = dict(
        (await session.execute(scoped(select(group, func.count())).group_by(group))).all()
    )
    ranked = scoped(
        select(
            TaskInstance.id,
            func.row_number()
            .over(
                partition_by=group,
                order_by=(TaskInstance.due_at, TaskInstance.unit_id, TaskInstance.no),
            )
            .label("rank"),
        )
    ).subquery()
    rows = await session.execute(
        select(TaskInstance, PlanTask.title, Unit, CommunityMember)
        .join(ranked, ranked.c.id == TaskInstance.id)
        .join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .where(ranked.c.rank <= cap)
        .order_by(
            CommunityMember.community_id,
            CommunityMember.is_lead.desc(),
            Unit.id,
            TaskInstance.due_at,
            TaskInstance.no,
        )
    )
    items = [OverdueItem(unit_ref(u, m), i.no, title, i.due_at) for i, title, u, m in rows]
    return Overdue(items, counts)


async def view_instances(
    session: AsyncSession,
    unit_ids: Collection[int],
    periods: Sequence[str],
    statuses: Collection[str] | None = OPEN,
) -> list[Listed]:
    """The units' instances of the periods (by default those still owed; None: all)."""
    stmt = (
        select(TaskInstance, PlanTask)
        .join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .where(among(session, TaskInstance.unit_id, unit_ids), TaskInstance.period.in_(periods))
        .order_by(TaskInstance.unit_id, TaskInstance.due_at, TaskInstance.no)
    )
    if statuses is not None:
        stmt = stmt.where(TaskInstance.status.in_(statuses))
    return [Listed(i, t) for i, t in await session.execute(stmt)]


async def listed(session: AsyncSession, instance_ids: Sequence[int]) -> list[Listed]:
    """The instances with their tasks, in the order of `instance_ids`."""
    rows = await session.execute(
        select(TaskInstance, PlanTask)
        .join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .where(TaskInstance.id.in_(instance_ids))
    )
    found = {i.id: Listed(i, t) for i, t in rows}
    return [found[i] for i in instance_ids if i in found]
