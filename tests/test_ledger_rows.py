"""The 台账's reads take a scope of any size: ids bound as one value, not one parameter each."""

from __future__ import annotations

import io
from pathlib import Path

from openpyxl import load_workbook

from bot.db import Database
from bot.reports.workbook import build_ledger
from tests.test_workbook import NOV, NOW, build, rows

# More ids than any backend binds one by one: PostgreSQL (asyncpg) takes 32,767 parameters,
# SQLite builds 32,766 or 250,000.
HUGE = 250_001


async def test_a_scope_of_more_ids_than_a_statement_may_bind(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    scope = [built.unit["ua"], built.unit["uc"]]
    padded = scope + list(range(10**7, 10**7 + HUGE))  # the real ids among ids of no unit
    async with db.begin() as s:
        few = load_workbook(io.BytesIO(await build_ledger(s, NOV, NOW, unit_ids=scope)))
        many = load_workbook(io.BytesIO(await build_ledger(s, NOV, NOW, unit_ids=padded)))
    assert {r[0] for r in rows(few["任务实例"])} == {"甲局", "丙局"}  # something to compare
    assert len(rows(few["报送记录"])) > 1 and rows(few["问题整改"])
    assert few.sheetnames == many.sheetnames
    for name in few.sheetnames:
        assert rows(many[name]) == rows(few[name]), name
