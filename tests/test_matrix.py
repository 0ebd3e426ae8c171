"""The unit × task status matrix against the hand-computed fixture of test_stats."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.db import Database
from bot.duerules import Period
from bot.ledger.matrix import Cell, Matrix, cell_state, status_matrix
from tests.test_stats import NOW, at, build

UNITS = ["甲局", "乙局", "丙局", "丁局", "戊局"]


def grid(m: Matrix) -> dict[tuple[str, str], tuple[int, str, str]]:
    units, tasks = dict(m.units), dict(m.tasks)
    return {
        (units[u], tasks[t]): (cell.no, cell.state, cell.colour) for (u, t), cell in m.cells.items()
    }


async def test_month_for_the_committee(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    async with db.begin() as s:
        m = await status_matrix(s, Period.parse("2026-11"), NOW)
    assert [short for _, short in m.units] == UNITS
    assert [title for _, title in m.tasks] == ["主题党日", "联席会议", "示范点", "党费收缴"]
    assert grid(m) == {
        ("甲局", "主题党日"): (1, "done", "green"),
        ("甲局", "联席会议"): (2, "late", "yellow"),
        ("甲局", "示范点"): (3, "overdue", "red"),
        ("甲局", "党费收缴"): (4, "excused", "grey"),
        ("乙局", "主题党日"): (5, "pending", "yellow"),
        ("乙局", "联席会议"): (6, "overdue", "red"),  # returned, past the deadline
        ("乙局", "示范点"): (7, "late", "yellow"),  # returned, resubmitted late
        ("乙局", "党费收缴"): (8, "returned", "yellow"),  # returned, not yet due
        ("丙局", "主题党日"): (9, "late", "yellow"),
        ("丙局", "联席会议"): (10, "done", "green"),
        ("丙局", "示范点"): (11, "late", "yellow"),
        ("丁局", "主题党日"): (12, "excused", "grey"),
        ("戊局", "主题党日"): (13, "overdue", "red"),  # withdrawn
    }
    cell = m.cells[(built.unit["ua"], built.task["T01"])]
    assert cell == Cell(built.instance[1], 1, "done", at(11, 10))


async def test_community_quarter_and_later_now(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    async with db.begin() as s:
        c2 = await status_matrix(
            s, Period.parse("2026-11"), NOW, community_id=built.community["c2"]
        )
        q4 = await status_matrix(s, Period.parse("2026-Q4"), NOW)
        later = await status_matrix(s, Period.parse("2026-11"), NOW + timedelta(days=5))
        empty = await status_matrix(s, Period.parse("2026-02"), NOW)
    assert [short for _, short in c2.units] == ["丙局", "丁局"]
    assert [title for _, title in c2.tasks] == ["主题党日", "联席会议", "示范点"]
    assert len(c2.cells) == 4
    q = grid(q4)
    # Several instances of one task in the quarter: the one most in need of chasing shows.
    assert q[("甲局", "主题党日")] == (1, "done", "green")  # Oct and Nov done: the later
    assert q[("丙局", "主题党日")] == (15, "overdue", "red")  # Oct overdue beats Nov late
    assert q[("乙局", "主题党日")] == (16, "pending", "yellow")  # Nov and Dec pending: Dec
    assert len(q) == 13
    after = grid(later)
    assert after[("乙局", "主题党日")] == (5, "overdue", "red")
    assert after[("乙局", "党费收缴")] == (8, "overdue", "red")
    assert [short for _, short in empty.units] == UNITS
    assert (empty.tasks, empty.cells) == ([], {})


def test_cell_states() -> None:
    due = at(11, 20)
    before, after = due - timedelta(hours=1), due + timedelta(hours=1)
    assert cell_state("accepted", 0, due, after) == "done"
    assert cell_state("submitted", 1, due, after) == "late"
    assert cell_state("pending", None, due, before) == "pending"
    assert cell_state("pending", None, due, after) == "overdue"
    assert cell_state("overdue", None, due, after) == "overdue"
    assert cell_state("returned", None, due, before) == "returned"
    assert cell_state("returned", None, due, after) == "overdue"
    assert cell_state("excused", 1, due, after) == "excused"
    assert cell_state("submitted", None, due, after) == "overdue"  # no report behind it
