"""Figures for reports: per unit, community and the committee, for a month, quarter or year.

An instance counts in the period its deadline falls in. Done on time: reported (submitted or
accepted) by the deadline; late: reported after it, by whole calendar days in Beijing between
the deadline and the (last re)submission, at least one; overdue: still unreported (overdue,
pending or returned past the deadline); excused ones are left out of the rate.

Problems (整改问题) count in the period their rectification deadline falls in; `problems_open`
are those found and not closed at the period's end, or now if that is earlier.

Ranking: higher on-time rate, then fewer overdue, then fewer days late on average, then unit
(or community) order; whoever owed nothing is listed last without a place. Inactive units are
left out; units in no community form a group of their own (id 0, 未编入共同体) that is never
ranked among the communities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.stats_queries import REPORTED, counts, open_problems
from bot.models import Community, CommunityMember, Unit

__all__ = [
    "NO_COMMUNITY",
    "REPORTED",
    "CommunityFigures",
    "Figures",
    "Report",
    "UnitFigures",
    "bounds",
    "community_key",
    "period_figures",
    "ranking_key",
    "report",
    "trend",
]

NO_COMMUNITY = "未编入共同体"
# Communities a chat post lists by name, at most: a province has 2,500, a post holds a few
# kilobytes, and the workbook (导出) has every one.
SHORTLIST = 15


@dataclass
class Figures:
    assigned: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    excused: int = 0
    open: int = 0  # not yet due, not yet reported
    days_late: int = 0  # whole calendar days after the deadline, summed over the late reports
    problems_found: int = 0  # problems whose rectification deadline falls in the period
    problems_closed: int = 0  # of those, closed (销号) by now
    problems_open: int = 0  # still open at the period's end (or now, if earlier)

    @property
    def owed(self) -> int:
        return self.assigned - self.excused

    @property
    def fallen_due(self) -> int:
        """Owed and either reported or past its deadline: what a rate can fairly judge."""
        return self.owed - self.open

    @property
    def rate(self) -> float | None:
        """On-time rate over what has fallen due (excused and not-yet-due work left out, so a
        month in progress is not shown as failing); None when nothing has."""
        return self.on_time / self.fallen_due if self.fallen_due else None

    @property
    def avg_days_late(self) -> float | None:
        return self.days_late / self.late if self.late else None

    @property
    def closure_rate(self) -> float | None:
        return self.problems_closed / self.problems_found if self.problems_found else None

    def add(self, other: Figures) -> None:
        # Spelt out: summing 20,000 units' figures by name lookups is measurably slower.
        self.assigned += other.assigned
        self.on_time += other.on_time
        self.late += other.late
        self.overdue += other.overdue
        self.excused += other.excused
        self.open += other.open
        self.days_late += other.days_late
        self.problems_found += other.problems_found
        self.problems_closed += other.problems_closed
        self.problems_open += other.problems_open


@dataclass
class UnitFigures:
    unit_id: int
    short: str
    community_id: int | None
    figures: Figures = field(default_factory=Figures)
    rank: int | None = None  # overall, 1 = best; None when nothing was owed
    community_rank: int | None = None


@dataclass
class CommunityFigures:
    community_id: int  # 0: the units in no community (未编入共同体)
    name: str
    figures: Figures = field(default_factory=Figures)
    units: list[UnitFigures] = field(default_factory=list)  # ranked, best first
    rank: int | None = None


@dataclass
class Report:
    period: Period
    committee: Figures
    communities: list[CommunityFigures]
    ranking: list[UnitFigures]  # all units, best first


def bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The period as [start, end): Shanghai midnight of the first day to that after the last."""
    return (
        datetime.combine(first, time.min, SHANGHAI),
        datetime.combine(last + timedelta(days=1), time.min, SHANGHAI),
    )


async def report(session: AsyncSession, period: Period, now: datetime) -> Report:
    start, end = bounds(period.first_day, period.last_day)
    units = await _units(session)
    names = await _community_names(session)
    for (unit_id, _), found in (await counts(session, [start, end], now, by_unit=True)).items():
        if unit_id in units:
            units[unit_id].figures = Figures(**found)
    ranking = sorted(units.values(), key=ranking_key)
    _number(ranking, "rank")
    communities: dict[int, CommunityFigures] = {
        cid: CommunityFigures(cid, name) for cid, name in names.items()
    }
    for u in ranking:
        cid = u.community_id or 0
        c = communities.setdefault(cid, CommunityFigures(cid, NO_COMMUNITY))
        c.units.append(u)
        c.figures.add(u.figures)
    for c in communities.values():
        _number(c.units, "community_rank")
    committee = Figures()
    for c in communities.values():
        committee.add(c.figures)
    ranked = sorted((c for c in communities.values() if c.community_id), key=community_key)
    for place, c in enumerate(ranked, start=1):
        c.rank = place if c.figures.owed else None
    return Report(period, committee, sorted(communities.values(), key=_community_order), ranking)


async def trend(
    session: AsyncSession,
    period: Period,
    now: datetime,
    count: int = 12,
    *,
    community_id: int | None = None,
    unit_id: int | None = None,
) -> list[tuple[Period, Figures]]:
    """The `count` periods of `period`'s cadence ending with it, oldest first; a period with
    nothing in it has zero figures. Four queries whatever the count."""
    periods = [period]
    while len(periods) < count:
        periods.insert(0, periods[0].previous())
    edges = [bounds(p.first_day, p.last_day)[0] for p in periods]
    edges.append(bounds(period.first_day, period.last_day)[1])
    counted = await counts(session, edges, now, community_id=community_id, unit_id=unit_id)
    result = [(p, Figures(**counted.get((0, i), {}))) for i, p in enumerate(periods)]
    opened = await open_problems(session, edges, now, community_id, unit_id)
    for (_, figures), still_open in zip(result, opened, strict=True):
        figures.problems_open = still_open
    return result


async def period_figures(
    session: AsyncSession, first: date, last: date, now: datetime
) -> list[CommunityFigures]:
    """The communities' figures over any span of days, their units in unit order (a roll-call,
    not a ranking: rankings reach community groups only once published)."""
    start, end = bounds(first, last)
    units = await _units(session)
    names = await _community_names(session)
    for (unit_id, _), found in (await counts(session, [start, end], now, by_unit=True)).items():
        if unit_id in units:
            units[unit_id].figures = Figures(**found)
    communities: dict[int, CommunityFigures] = {}
    for u in units.values():
        if not u.figures.assigned:
            continue
        cid = u.community_id or 0
        c = communities.setdefault(cid, CommunityFigures(cid, names.get(cid, NO_COMMUNITY)))
        c.units.append(u)
        c.figures.add(u.figures)
    return sorted(communities.values(), key=_community_order)


@dataclass(frozen=True, slots=True)
class Shortlist:
    """The communities a post lists: all of them, or those that lag furthest."""

    shown: list[CommunityFigures]
    total: int  # communities in all

    @property
    def partial(self) -> bool:
        return len(self.shown) < self.total

    @property
    def left_out(self) -> int:
        return self.total - len(self.shown)


def shortlist(
    communities: Sequence[CommunityFigures], limit: int = SHORTLIST, *, worst: bool = True
) -> Shortlist:
    """All of ``communities``, in their order, where there are ``limit`` or fewer; else the
    ``limit`` with the lowest on-time rate (then the most overdue), the worst first, leaving
    out those with nothing fallen due. ``worst=False``: the first ``limit`` in their order,
    for a reader who may not see rankings yet."""
    if len(communities) <= limit or not worst:
        return Shortlist(list(communities[:limit]), len(communities))
    judged = [c for c in communities if c.figures.rate is not None]
    return Shortlist(sorted(judged, key=community_key, reverse=True)[:limit], len(communities))


def ranking_key(u: UnitFigures) -> tuple[bool, float, int, float, int]:
    """Best first: higher on-time rate, fewer overdue, fewer days late on average, unit order;
    units that owed nothing last."""
    return _key(u.figures, u.unit_id)


def community_key(c: CommunityFigures) -> tuple[bool, float, int, float, int]:
    return _key(c.figures, c.community_id)


def _key(f: Figures, order: int) -> tuple[bool, float, int, float, int]:
    rate, avg = f.rate, f.avg_days_late
    return (rate is None, -(rate or 0.0), f.overdue, avg or 0.0, order)


def _community_order(c: CommunityFigures) -> tuple[bool, int]:
    return (c.community_id == 0, c.community_id)


def _number(units: Sequence[UnitFigures], attr: str) -> None:
    """Places in an already sorted list; units that owed nothing get no place."""
    for place, u in enumerate(units, start=1):
        setattr(u, attr, place if u.figures.owed else None)


async def _units(session: AsyncSession) -> dict[int, UnitFigures]:
    rows = await session.execute(
        select(Unit.id, Unit.short_name, Community.id)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .outerjoin(Community, and_(Community.id == CommunityMember.community_id, Community.active))
        .where(Unit.active)
        .order_by(Unit.id)
    )
    return {uid: UnitFigures(uid, short, cid) for uid, short, cid in rows.all()}


async def _community_names(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(
        select(Community.id, Community.name).where(Community.active).order_by(Community.id)
    )
    return dict(rows.all())
