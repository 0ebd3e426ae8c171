"""The charts a report carries, made from the ledger's figures.

Rendering takes 0.2–2 s of CPU, so it runs in a worker thread, and callers render before they
write: a transaction that holds SQLite's write lock must not wait for matplotlib. A missing
font or a failed chart costs the picture, never the report (a warning says why).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence

from bot.duerules import Period
from bot.ledger.matrix import Matrix
from bot.ledger.stats import Figures, Report, shortlist

__all__ = ["completion", "matrix", "render", "trend"]

log = logging.getLogger(__name__)
Line = Sequence[tuple[Period, Figures]]


async def render(draw: Callable[[], bytes], what: str) -> bytes | None:
    try:
        return await asyncio.to_thread(draw)
    except Exception:  # a picture is an extra: the text of the report still goes out
        log.warning("chart %s not drawn", what, exc_info=True)
        return None


def completion(r: Report) -> Callable[[], bytes]:
    """Each community's bar; of a province's thousands, those the report lists (a bar each
    for 2,500 took two minutes and 1.6 GB, and made a picture no robot would take)."""
    listed = shortlist(r.communities)
    rows = [(c.name, c.figures) for c in listed.shown]
    title = f"{r.period.label} 各共同体完成情况"
    if listed.partial:
        title = f"{r.period.label} 按时率最低的{len(rows)}个共同体（共{listed.total}个）"

    def draw() -> bytes:
        _import_charts()
        from bot.reports import charts

        return charts.completion_by_community(title, rows)

    return draw


def trend(title: str, line: Line) -> Callable[[], bytes]:
    points = [(tick(p), f.rate, f.assigned) for p, f in line]

    def draw() -> bytes:
        _import_charts()
        from bot.reports import charts

        return charts.trend(title, points)

    return draw


def matrix(title: str, m: Matrix) -> Callable[[], bytes]:
    units = [short for _, short in m.units]
    tasks = [name for _, name in m.tasks]
    states = [
        [cell.state if (cell := m.cells.get((u, t))) else None for t, _ in m.tasks]
        for u, _ in m.units
    ]

    def draw() -> bytes:
        _import_charts()
        from bot.reports import charts

        return charts.status_matrix(title, units, tasks, states)

    return draw


def _import_charts() -> None:
    """Import bot.reports.charts, when first drawn: matplotlib's import costs a second.

    What that import builds (some hundred thousand objects) lives as long as the process, like
    what start-up built, and is frozen as that is (bot/app.py): otherwise every full collection
    walks it, in the middle of whichever request triggers one (a 本月任务 took 60–77 ms after a
    月报 in bench/scans.py, against 5 ms). Collected first, so no garbage is frozen with it."""
    if _CHARTS in sys.modules:
        return
    import bot.reports.charts  # noqa: F401

    gc.collect()
    gc.freeze()


_CHARTS = "bot.reports.charts"


def tick(p: Period) -> str:
    """A period as an axis label: 11月 (1月 shows its year), Q4, 2026."""
    if p.cadence == "monthly":
        return f"{p.year % 100:02d}年1月" if p.index == 1 else f"{p.index}月"
    if p.cadence == "quarterly":
        return f"{p.year % 100:02d}Q{p.index}"
    return str(p.year)
