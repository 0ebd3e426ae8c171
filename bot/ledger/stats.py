"""Figures for reports: per unit and community, what was owed in a period and how it went.

An instance counts in the period its deadline falls in. Done on time: reported (submitted or
accepted) by the deadline; late: reported after it; overdue: still unreported (overdue, pending
or returned past the deadline); excused ones are left out of the rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from sqlalchemy import Integer, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.models import CheckIn, Community, CommunityMember, TaskInstance, Unit

REPORTED = ("submitted", "accepted")


@dataclass
class Figures:
    assigned: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    excused: int = 0
    open: int = 0  # not yet due, not yet reported

    @property
    def rate(self) -> float | None:
        """On-time rate over what was owed (excused excluded); None when nothing was owed."""
        owed = self.assigned - self.excused
        return self.on_time / owed if owed else None

    def add(self, other: Figures) -> None:
        for name in ("assigned", "on_time", "late", "overdue", "excused", "open"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class UnitFigures:
    unit_id: int
    short: str
    community_id: int | None
    figures: Figures = field(default_factory=Figures)


@dataclass
class CommunityFigures:
    community_id: int
    name: str
    figures: Figures = field(default_factory=Figures)
    units: list[UnitFigures] = field(default_factory=list)


async def period_figures(
    session: AsyncSession, first: date, last: date, now: datetime
) -> list[CommunityFigures]:
    start = datetime.combine(first, time.min, SHANGHAI)
    end = datetime.combine(last, time.max, SHANGHAI)
    on_time_report = (
        select(CheckIn.instance_id, func.min(CheckIn.late.cast(Integer)).label("late"))
        .where(CheckIn.status.in_(REPORTED))
        .group_by(CheckIn.instance_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(
                Unit.id,
                Unit.short_name,
                CommunityMember.community_id,
                Community.name,
                TaskInstance.status,
                TaskInstance.due_at,
                on_time_report.c.late,
            )
            .join(TaskInstance, TaskInstance.unit_id == Unit.id)
            .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
            .outerjoin(Community, Community.id == CommunityMember.community_id)
            .outerjoin(on_time_report, on_time_report.c.instance_id == TaskInstance.id)
            .where(and_(TaskInstance.due_at >= start, TaskInstance.due_at <= end), Unit.active)
        )
    ).all()
    units: dict[int, UnitFigures] = {}
    names: dict[int, str] = {}
    for unit_id, short, cid, cname, status, due_at, late in rows:
        u = units.setdefault(unit_id, UnitFigures(unit_id, short, cid))
        if cid is not None:
            names[cid] = cname
        f = u.figures
        f.assigned += 1
        if status == "excused":
            f.excused += 1
        elif status in REPORTED and late is not None:
            if late:
                f.late += 1
            else:
                f.on_time += 1
        elif due_at < now:
            f.overdue += 1
        else:
            f.open += 1
    communities: dict[int, CommunityFigures] = {}
    for u in units.values():
        cid = u.community_id or 0
        c = communities.setdefault(cid, CommunityFigures(cid, names.get(cid, "未编入共同体")))
        c.units.append(u)
        c.figures.add(u.figures)
    for c in communities.values():
        c.units.sort(key=ranking_key)
    return sorted(communities.values(), key=lambda c: c.community_id)


def ranking_key(u: UnitFigures) -> tuple[float, int, int]:
    """Best first: higher on-time rate, then fewer overdue, then unit order."""
    rate = u.figures.rate
    return (-(rate if rate is not None else -1.0), u.figures.overdue, u.unit_id)
