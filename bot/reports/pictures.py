"""The charts a report carries, made from the ledger's figures.

A chart is drawn in a child process of its own (`Drawer`), started when one is first needed
and ended once none has been asked for in IDLE_SECONDS. matplotlib's import costs the process
that makes it some 57 MB for good and a second; the server draws a few charts a month (the
月报, a `统计` now and then), and stays the size it was. A child that dies, a missing font
or a failed chart costs the picture, never the report (a warning says why). Callers render
before they write: a transaction that holds SQLite's write lock must not wait for a chart.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from bot.duerules import Period
from bot.ledger.matrix import Matrix
from bot.ledger.stats import Figures, Report, shortlist

__all__ = ["Drawer", "Drawing", "completion", "matrix", "render", "trend"]

log = logging.getLogger(__name__)
Line = Sequence[tuple[Period, Figures]]
IDLE_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Drawing:
    """A chart to draw: a function of bot.reports.charts and its arguments, plain data that
    goes to the child process as it is. Called, it draws here."""

    chart: str
    args: tuple[Any, ...]

    def __call__(self) -> bytes:
        from bot.reports import charts

        png: bytes = getattr(charts, self.chart)(*self.args)
        return png


class Drawer:
    """Draws in one child process, started on demand, ended when idle."""

    def __init__(self, idle: float = IDLE_SECONDS) -> None:
        self.idle = idle
        self.pool: ProcessPoolExecutor | None = None
        self._drawing = 0
        self._closing: asyncio.TimerHandle | None = None

    async def draw(self, drawing: Drawing) -> bytes:
        loop = asyncio.get_running_loop()
        if self._closing is not None:
            self._closing.cancel()
        if self.pool is None:
            # spawn: a fresh interpreter, not a fork of a server with threads and sockets.
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        pool = self.pool
        self._drawing += 1
        try:
            return await loop.run_in_executor(pool, drawing)
        except BrokenProcessPool:
            if pool is self.pool:  # a broken pool stays broken: the next chart starts anew
                self.pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self._drawing -= 1
            if not self._drawing:
                self._closing = loop.call_later(self.idle, self.close)

    def close(self) -> None:
        """End the child, if nothing is being drawn."""
        if self.pool is not None and not self._drawing:
            self.pool.shutdown(wait=False)
            self.pool = None


_drawer = Drawer()


async def render(drawing: Drawing, what: str) -> bytes | None:
    try:
        return await _drawer.draw(drawing)
    except Exception:  # a picture is an extra: the text of the report still goes out
        log.warning("chart %s not drawn", what, exc_info=True)
        return None


def completion(r: Report) -> Drawing:
    """Each community's bar; of a province's thousands, those the report lists (a bar each
    for 2,500 took two minutes and 1.6 GB, and made a picture no robot would take)."""
    listed = shortlist(r.communities)
    rows = [(c.name, c.figures) for c in listed.shown]
    title = f"{r.period.label} 各共同体完成情况"
    if listed.partial:
        title = f"{r.period.label} 按时率最低的{len(rows)}个共同体（共{listed.total}个）"
    return Drawing("completion_by_community", (title, rows))


def trend(title: str, line: Line) -> Drawing:
    return Drawing("trend", (title, [(tick(p), f.rate, f.assigned) for p, f in line]))


def matrix(title: str, m: Matrix) -> Drawing:
    units = [short for _, short in m.units]
    tasks = [name for _, name in m.tasks]
    states = [
        [cell.state if (cell := m.cells.get((u, t))) else None for t, _ in m.tasks]
        for u, _ in m.units
    ]
    return Drawing("status_matrix", (title, units, tasks, states))


def tick(p: Period) -> str:
    """A period as an axis label: 11月 (1月 shows its year), Q4, 2026."""
    if p.cadence == "monthly":
        return f"{p.year % 100:02d}年1月" if p.index == 1 else f"{p.index}月"
    if p.cadence == "quarterly":
        return f"{p.year % 100:02d}Q{p.index}"
    return str(p.year)
