"""What one dashboard page shows, gathered from the ledger in one read-only transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from bot.duerules import Period, PeriodCadence
from bot.ledger import board, stats
from bot.ledger.matrix import Cell, Matrix, status_matrix
from bot.ledger.people import community_units
from bot.ledger.progress import CommunityRef, communities
from bot.ledger.stats import Figures
from bot.links import Links

from .pages import day
from .trend import TrendChart, trend_chart

LIST_CAP = 200  # rows of the overdue and problem lists; the totals say how many there are
STATE_LABELS = {
    "done": "按时完成",
    "late": "迟报",
    "pending": "待报送",
    "returned": "已退回",
    "overdue": "逾期",
    "excused": "免报",
}
LEGEND = [  # (classes, label): a pending cell is a paler yellow, it may yet be on time
    ("green", "按时完成"),
    ("yellow", "迟报或已退回"),
    ("yellow pending", "待报送（未到期）"),
    ("red", "逾期未报"),
    ("grey", "免报"),
]
PERIOD_CADENCES: tuple[PeriodCadence, ...] = ("monthly", "quarterly", "yearly")
CADENCE_NAMES = {"monthly": "按月", "quarterly": "按季度", "yearly": "按年度"}
THIS = {"monthly": "本月", "quarterly": "本季度", "yearly": "本年度"}


def committee_path() -> str:
    return "/dashboard/committee"


def community_path(key: str) -> str:
    return f"/dashboard/community/{key}"


@dataclass(frozen=True, slots=True)
class Signed:
    """The signature of the link being viewed, for links to other periods (and, on the
    committee's page, to the communities' pages: the committee's reader may see those)."""

    links: Links
    exp: int

    def href(self, path: str, period: Period) -> str:
        sig = self.links.signature(path, self.exp)
        return f"{path}?{urlencode({'period': period.key, 'exp': self.exp, 'sig': sig})}"


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    figures: Figures
    rank: int | None
    href: str | None


@dataclass(frozen=True, slots=True)
class CellView:
    colour: str
    state: str
    no: int
    title: str


@dataclass(frozen=True, slots=True)
class MatrixRow:
    unit: str
    cells: list[CellView | None]


@dataclass(frozen=True, slots=True)
class MatrixView:
    tasks: list[str]
    rows: list[MatrixRow]


@dataclass(frozen=True, slots=True)
class NavLink:
    label: str
    href: str | None  # None: the page being shown


@dataclass(frozen=True, slots=True)
class Page:
    scope: str  # 全部共同体 or the community's name
    committee: str
    period: Period
    now: datetime
    expires_at: datetime
    figures: Figures
    nav: list[NavLink]
    cadences: list[NavLink]
    bars_title: str
    bars: list[Bar]
    matrix: MatrixView
    trend: TrendChart
    overdue: board.Listing[board.OverdueRow]
    problems: board.Listing[board.ProblemRow]
    legend: list[tuple[str, str]]


async def build_page(
    session: AsyncSession,
    *,
    committee: str,
    community: CommunityRef | None,
    period: Period,
    now: datetime,
    path: str,
    signed: Signed,
    expires_at: datetime,
) -> Page:
    cid = community.id if community else None
    report = await stats.report(session, period, now)
    series = await stats.trend(session, period, now, 12, community_id=cid)
    matrix = await status_matrix(session, period, now, community_id=cid)
    start, end = stats.bounds(period.first_day, period.last_day)
    if community is None:
        unit_ids: list[int] | None = None
        figures = report.committee
        keys = {c.id: c.key for c in await communities(session)}
        bars = _community_bars(report, keys, signed, period)
        bars_title = "各共同体完成情况"
    else:
        members = await community_units(session, community.id)
        unit_ids = [u.id for u in members]
        found = next((c for c in report.communities if c.community_id == community.id), None)
        figures = found.figures if found else Figures()
        by_unit = {u.unit_id: u.figures for u in found.units} if found else {}
        # A roll-call in unit order, not a ranking: rankings reach communities once published.
        bars = [Bar(u.short, by_unit.get(u.id, Figures()), None, None) for u in members]
        bars_title = "各单位完成情况"
    today = now.date()
    return Page(
        scope=community.name if community else "全部共同体",
        committee=committee,
        period=period,
        now=now,
        expires_at=expires_at,
        figures=figures,
        nav=_nav(period, today, path, signed),
        cadences=_cadences(period, today, path, signed),
        bars_title=bars_title,
        bars=bars,
        matrix=_matrix_view(matrix),
        trend=trend_chart(series),
        overdue=await board.overdue_due_between(
            session, start, end, now=now, unit_ids=unit_ids, limit=LIST_CAP
        ),
        problems=await board.open_problem_rows(session, unit_ids, today=today, limit=LIST_CAP),
        legend=LEGEND,
    )


def _community_bars(
    report: stats.Report, keys: dict[int, str], signed: Signed, period: Period
) -> list[Bar]:
    """Best first, with places: the committee's page is for its admins, who see rankings."""
    ranked = sorted(
        (c for c in report.communities if c.community_id or c.figures.assigned),
        key=lambda c: (c.rank is None, c.rank or 0, c.community_id == 0, c.community_id),
    )
    return [
        Bar(
            c.name,
            c.figures,
            c.rank,
            signed.href(community_path(keys[c.community_id]), period)
            if c.community_id in keys
            else None,
        )
        for c in ranked
    ]


def _matrix_view(matrix: Matrix) -> MatrixView:
    rows = [
        MatrixRow(short, [_cell(matrix.cells.get((unit_id, task))) for task, _ in matrix.tasks])
        for unit_id, short in matrix.units
    ]
    return MatrixView([title for _, title in matrix.tasks], rows)


def _cell(cell: Cell | None) -> CellView | None:
    if cell is None:
        return None
    label = STATE_LABELS.get(cell.state, cell.state)
    return CellView(
        cell.colour, cell.state, cell.no, f"编号 {cell.no} · {label} · 截止 {day(cell.due_at)}"
    )


def _nav(period: Period, today: date, path: str, signed: Signed) -> list[NavLink]:
    current = Period.containing(period.cadence, today)
    links = [NavLink(f"‹ {period.previous().label}", signed.href(path, period.previous()))]
    links.append(NavLink(period.label, None))
    if period.next() <= current:
        links.append(NavLink(f"{period.next().label} ›", signed.href(path, period.next())))
    if period != current:
        links.append(NavLink(THIS[period.cadence], signed.href(path, current)))
    return links


def _cadences(period: Period, today: date, path: str, signed: Signed) -> list[NavLink]:
    """Switch to this month, quarter or year."""
    links = []
    for cadence in PERIOD_CADENCES:
        here = Period.containing(cadence, today)
        href = None if cadence == period.cadence else signed.href(path, here)
        links.append(NavLink(CADENCE_NAMES[cadence], href))
    return links
