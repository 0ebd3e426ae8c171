"""The on-time trend as an inline SVG drawn on the server: no script, no chart library, nothing
fetched, so the page works on an intranet without internet access.

Only geometry is computed here; templates/web/_trend.html.j2 writes the markup (escaped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.duerules import Period
from bot.ledger.stats import Figures

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 36, 12, 12, 34  # room for the axis labels


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    label: str  # under the axis: 11月, Q4, 2026
    year: str  # a second line where the year changes, else ""
    title: str  # the tooltip: period, rate and counts
    value: str  # the rate, 83%, or "" when nothing was owed
    has_data: bool  # something was owed; otherwise a hollow mark on the axis
    current: bool


@dataclass(frozen=True, slots=True)
class TrendChart:
    points: list[Point]
    runs: list[str]  # polyline point lists, broken where a period owed nothing
    grid: list[tuple[float, str]] = field(default_factory=list)  # (y, "50%")
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    baseline: float = HEIGHT - BOTTOM


def trend_chart(series: Sequence[tuple[Period, Figures]]) -> TrendChart:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / (len(series) - 1) if len(series) > 1 else 0.0

    def y_of(rate: float) -> float:
        return round(TOP + (1 - rate) * plot_h, 1)

    points: list[Point] = []
    runs: list[str] = []
    run: list[str] = []
    previous_year: int | None = None
    for i, (period, figures) in enumerate(series):
        x = round(LEFT + i * step, 1)
        rate = figures.rate
        year = str(period.year) if period.year != previous_year else ""
        previous_year = period.year
        points.append(
            Point(
                x,
                y_of(rate) if rate is not None else y_of(0.0),
                _label(period),
                year if period.cadence != "yearly" else "",
                _title(period, figures),
                f"{round(rate * 100)}%" if rate is not None else "",
                rate is not None,
                i == len(series) - 1,
            )
        )
        if rate is None:
            if len(run) > 1:
                runs.append(" ".join(run))
            run = []
        else:
            run.append(f"{x},{y_of(rate)}")
    if len(run) > 1:
        runs.append(" ".join(run))
    grid = [(y_of(r), f"{round(r * 100)}%") for r in (0.0, 0.5, 1.0)]
    return TrendChart(points, runs, grid)


def _label(period: Period) -> str:
    if period.cadence == "monthly":
        return f"{period.index}月"
    if period.cadence == "quarterly":
        return f"Q{period.index}"
    return str(period.year)


def _title(period: Period, f: Figures) -> str:
    if f.rate is None:
        return f"{period.label}：无应报任务"
    return (
        f"{period.label}：按时率 {round(f.rate * 100)}%"
        f"（应报 {f.assigned}，按时 {f.on_time}，迟报 {f.late}，逾期 {f.overdue}）"
    )
