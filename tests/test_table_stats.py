"""The planner's statistics for a table a burst fills: gathered by duban itself on PostgreSQL
as the rows it wrote double, not a minute later by autovacuum; nothing to do on SQLite."""

from __future__ import annotations

from sqlalchemy import text

from bot.clock import FixedClock
from bot.db import Database
from bot.inbound import Inbox
from bot.table_stats import Growth
from tests.test_inbox import NOW, Recorder, message


async def _columns_with_statistics(db: Database, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT attname FROM pg_stats WHERE tablename = :t"), {"t": table}
        )
        return {name for (name,) in rows}


async def test_a_burst_into_an_empty_inbox_leaves_statistics_to_plan_by(db: Database) -> None:
    inbox = Inbox(db, FixedClock(NOW), Recorder())
    if db.dialect == "postgresql":
        assert await _columns_with_statistics(db, "inbound_seen") == set()
    accepted = await inbox.accept([message(f"burst-{i}") for i in range(1500)])
    await inbox.drain()
    assert len(accepted) == 1500
    if db.dialect == "postgresql":
        # What the inbox's statements look ids up by, and tell handled from waiting by.
        assert {"platform", "event_id", "handled_at"} <= await _columns_with_statistics(
            db, "inbound_seen"
        )
    await inbox.close()


async def test_analyzed_each_time_the_rows_written_double(db: Database) -> None:
    growth = Growth(db, "inbound_seen", first=10)
    runs = []
    for rows in (9, 1, 5, 4, 1, 20):  # 9, 10 (first), 15, 19, 20 (doubled), 40 (doubled)
        growth.wrote(rows)
        await growth.wait()
        runs.append(growth.analyzed)
    assert runs == ([0, 1, 1, 1, 2, 3] if db.dialect == "postgresql" else [0] * 6)


async def test_a_refused_analyze_is_logged_and_not_tried_again(db: Database, caplog) -> None:
    growth = Growth(db, "no_such_table", first=1)
    growth.wrote(1)
    await growth.wait()
    growth.wrote(100)
    await growth.wait()
    assert growth.analyzed == 0
    failed = [r for r in caplog.records if "ANALYZE no_such_table failed" in r.getMessage()]
    assert len(failed) == (1 if db.dialect == "postgresql" else 0)
