"""Charts are drawn in a child process that ends when idle: the server never imports
matplotlib, and a chart that fails costs only the picture."""

from __future__ import annotations

import asyncio
import multiprocessing
import os

from bot.duerules import Period
from bot.ledger.stats import Figures
from bot.reports import pictures
from bot.reports.pictures import Drawer, Drawing

LINE = [
    (Period.parse("2026-09"), Figures(assigned=10, on_time=6, late=2, overdue=2)),
    (Period.parse("2026-10"), Figures(assigned=10, on_time=8, late=1, overdue=1)),
    (Period.parse("2026-11"), Figures(assigned=10, on_time=9, late=1)),
]


async def test_a_chart_is_drawn_in_a_child_that_ends_once_idle() -> None:
    drawer = Drawer(idle=30)
    before = {p.pid for p in multiprocessing.active_children()}
    png = await drawer.draw(pictures.trend("近3个月按时率", LINE))
    # The child stays for the next chart, and is told to go once idle long enough. Read at
    # once: drawing the same picture here below imports matplotlib, a second or more.
    assert drawer.pool is not None and drawer._closing is not None
    loop = asyncio.get_running_loop()
    assert 29 < drawer._closing.when() - loop.time() <= 30
    assert png.startswith(b"\x89PNG")
    assert png == pictures.trend("近3个月按时率", LINE)()  # the same picture as drawn here
    children = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert len(children) == 1 and children[0].pid != os.getpid()
    again = await drawer.draw(pictures.trend("近3个月按时率", LINE))
    assert again == png and {p.pid for p in multiprocessing.active_children()} >= {children[0].pid}
    drawer._closing.cancel()
    drawer.close()  # what the timer does
    assert drawer.pool is None
    await asyncio.to_thread(children[0].join, 30)
    assert not children[0].is_alive()


async def test_a_chart_that_fails_costs_only_the_picture() -> None:
    assert await pictures.render(Drawing("no_such_chart", ()), "broken") is None
    png = await pictures.render(pictures.trend("近3个月按时率", LINE), "trend")
    assert png is not None and png.startswith(b"\x89PNG")
