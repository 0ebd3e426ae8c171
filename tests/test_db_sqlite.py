"""SQLite's connection handling in bot.db, bot.sqlite_driver and bot.bulk, on a real SQLite
file whatever the suite's database: the one-call cursor, what the pool does when a connection
comes back, and the inbox's claims through the driver."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, OperationalError

from bot import schema
from bot.bulk import insert_new
from bot.db import READER_CACHE_KIB, WRITER_CHECKPOINT_PAGES, Database
from bot.models import InboundSeen, Unit
from bot.sqlite_driver import OneTripCursor

SEEN = cast(Table, InboundSeen.__table__)
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
COLUMNS = ("platform", "event_id", "seen_at", "body", "attempts")


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'lite.db'}")
    await schema.upgrade(db.engine)
    yield db
    await db.dispose()


async def traced(db: Database) -> list[str]:
    """Every statement SQLite runs on the pool's one connection, as the driver sends it."""
    said: list[str] = []
    async with db.engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.set_trace_callback(said.append)
    return said


async def count(db: Database) -> int:
    async with db.begin() as s:
        return int(await s.scalar(select(func.count()).select_from(SEEN)) or 0)


def row(event_id: str, body: dict[str, Any] | None = None) -> tuple[Any, ...]:
    return ("dingtalk", event_id, NOW, body or {"text": "打卡 1 已完成"}, 0)


async def test_a_committed_transaction_is_not_rolled_back_again(lite: Database) -> None:
    said = await traced(lite)
    async with lite.begin() as s:
        await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
    assert [q for q in said if q in ("COMMIT", "ROLLBACK")] == ["COMMIT"]
    assert await count(lite) == 1


async def test_a_transaction_left_open_is_rolled_back_when_the_connection_returns(
    lite: Database,
) -> None:
    async with lite.engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.execute(
            "INSERT INTO inbound_seen (platform, event_id, seen_at, attempts) "
            "VALUES ('dingtalk', 'left', '2026-11-22 10:00:00.000000', 0)"
        )
        assert driver.in_transaction
    # Rolled back, and the write lock with it: the next writer neither waits nor sees the row.
    async with lite.begin() as s:
        await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("next"), strict=True))))
    async with lite.begin() as s:
        assert list(await s.scalars(select(SEEN.c.event_id))) == ["next"]


async def test_a_failed_transaction_is_rolled_back(lite: Database) -> None:
    said = await traced(lite)
    with pytest.raises(RuntimeError):
        async with lite.begin() as s:
            await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
            raise RuntimeError("handling failed")
    assert "ROLLBACK" in said
    assert await count(lite) == 0


async def test_insert_new_returns_only_new_rows_stored_as_sqlalchemy_stores_them(
    lite: Database,
) -> None:
    said = await traced(lite)
    first = await insert_new(
        lite.engine, SEEN, COLUMNS, [row("a"), row("b")], ("platform", "event_id")
    )
    again = await insert_new(
        lite.engine, SEEN, COLUMNS, [row("b"), row("c")], ("platform", "event_id")
    )
    assert sorted(first) == [("dingtalk", "a"), ("dingtalk", "b")]
    assert again == [("dingtalk", "c")]
    # One statement and one commit each; read back through SQLAlchemy's types unchanged.
    assert sum(q.startswith("INSERT INTO inbound_seen") for q in said) == 2
    assert said.count("COMMIT") == 2
    async with lite.begin() as s:
        got = (
            await s.execute(select(SEEN.c.seen_at, SEEN.c.body).where(SEEN.c.event_id == "c"))
        ).one()
    assert got == (NOW, {"text": "打卡 1 已完成"})


async def threads_of_inserts(db: Database) -> list[int]:
    """The thread on which SQLite runs each INSERT on the pool's one connection."""
    ran: list[int] = []
    async with db.engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        await driver.set_trace_callback(
            lambda q: ran.append(threading.get_ident()) if q.startswith("INSERT") else None
        )
    return ran


async def busy_timeout(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text("PRAGMA busy_timeout")) or 0)


async def test_a_claim_runs_on_the_event_loop_s_thread_while_the_lock_is_free(
    lite: Database,
) -> None:
    ran = await threads_of_inserts(lite)
    found = await insert_new(lite.engine, SEEN, COLUMNS, [row("a")], ("event_id",))
    assert found == [("a",)]
    assert ran == [threading.get_ident()]
    assert await busy_timeout(lite) == 30_000  # as the engine was made, for the thread's waits


async def test_a_claim_waits_in_aiosqlite_s_thread_while_another_process_writes(
    lite: Database, tmp_path: Path
) -> None:
    ran = await threads_of_inserts(lite)
    other = sqlite3.connect(tmp_path / "lite.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a `duban` command might
    other.execute(
        "INSERT INTO inbound_seen (platform, event_id, seen_at, attempts) "
        "VALUES ('dingtalk', 'theirs', '2026-11-22 10:00:00.000000', 0)"
    )
    claim = asyncio.create_task(
        insert_new(lite.engine, SEEN, COLUMNS, [row("mine")], ("event_id",))
    )
    turns = 0
    for _ in range(20):  # the loop goes on turning while the claim waits for the lock
        await asyncio.sleep(0.005)
        turns += 1
    assert not claim.done() and turns == 20
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(claim, 10) == [("mine",)]
    # Tried here first without waiting (rolled back), then run where waiting blocks nobody.
    assert ran[0] == threading.get_ident() and ran[-1] != threading.get_ident()
    assert await count(lite) == 2
    assert await busy_timeout(lite) == 30_000


async def test_a_claim_on_a_shared_memory_connection_stays_in_aiosqlite_s_thread() -> None:
    # Its pool hands the one connection to every caller at once: the loop must not use it.
    memory = Database("sqlite+aiosqlite:///:memory:")
    try:
        await schema.upgrade(memory.engine)
        ran = await threads_of_inserts(memory)
        found = await insert_new(memory.engine, SEEN, COLUMNS, [row("a")], ("event_id",))
        assert found == [("a",)]
        assert len(ran) == 1 and ran[0] != threading.get_ident()
    finally:
        await memory.dispose()


async def test_insert_new_that_fails_leaves_nothing_behind(lite: Database) -> None:
    with pytest.raises(Exception, match="NOT NULL"):
        await insert_new(
            lite.engine, SEEN, COLUMNS, [row("a"), ("dingtalk", None, NOW, {}, 0)], ("event_id",)
        )
    assert await count(lite) == 0
    assert await insert_new(lite.engine, SEEN, COLUMNS, [row("a")], ("event_id",)) == [("a",)]


async def test_a_sqlite_engine_runs_each_statement_in_one_call(lite: Database) -> None:
    async with lite.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneTripCursor)


async def test_the_one_trip_cursor_reports_what_sqlalchemy_reads(lite: Database) -> None:
    rows = [dict(zip(COLUMNS, row(f"m{i}"), strict=True)) for i in range(5)]
    async with lite.begin() as s:
        await s.execute(insert(SEEN), rows)  # executemany
        marked = await s.execute(
            update(SEEN).where(SEEN.c.event_id.in_(["m1", "m2", "nobody"])).values(attempts=1)
        )
        assert cast(CursorResult[Any], marked).rowcount == 2
        back = await s.execute(
            update(SEEN).where(SEEN.c.attempts == 1).values(attempts=2).returning(SEEN.c.event_id)
        )
        assert sorted(back.scalars()) == ["m1", "m2"]
        gone = await s.execute(delete(SEEN).where(SEEN.c.event_id == "m4"))
        assert cast(CursorResult[Any], gone).rowcount == 1
        # An ORM insert learns its new id from the driver.
        unit = Unit(key="u_new", name="新单位", short_name="新单位", created_at=NOW, updated_at=NOW)
        s.add(unit)
        await s.flush()
        assert isinstance(unit.id, int) and unit.id > 0
    async with lite.begin() as s:
        streamed = [
            r async for r in await s.stream(select(SEEN.c.event_id).order_by(SEEN.c.event_id))
        ]
        assert [e for (e,) in streamed] == ["m0", "m1", "m2", "m3"]
        page = (await s.execute(select(SEEN.c.event_id).order_by(SEEN.c.event_id))).fetchmany(3)
        assert [e for (e,) in page] == ["m0", "m1", "m2"]


async def test_driver_errors_arrive_as_sqlalchemy_s(lite: Database) -> None:
    async with lite.begin() as s:
        await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
    with pytest.raises(IntegrityError):
        async with lite.begin() as s:
            await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
    with pytest.raises(OperationalError):
        async with lite.begin() as s:
            await s.execute(text("SELECT nothing FROM nowhere"))
    assert await count(lite) == 1


async def test_a_read_goes_on_while_the_writer_holds_its_connection(lite: Database) -> None:
    """`reading()` has connections of its own: the writer's open transaction neither blocks
    it nor shows it anything uncommitted."""
    async with lite.begin() as s:
        await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
    async with lite.begin() as writing:
        await writing.execute(insert(SEEN).values(dict(zip(COLUMNS, row("b"), strict=True))))
        async with asyncio.timeout(5):  # the writer's one connection is held right here
            async with lite.reading() as r:
                seen = (await r.scalars(select(SEEN.c.event_id))).all()
    assert seen == ["a"]
    assert await count(lite) == 2


async def test_a_write_in_a_read_is_refused(lite: Database) -> None:
    with pytest.raises(OperationalError, match="readonly"):
        async with lite.reading() as r:
            await r.execute(insert(SEEN).values(dict(zip(COLUMNS, row("a"), strict=True))))
    assert await count(lite) == 0


async def test_without_a_one_connection_writer_reads_share_the_engine(tmp_path: Path) -> None:
    memory = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert memory.readers is memory.engine
    finally:
        await memory.dispose()


async def test_the_writer_leaves_checkpoints_to_a_reader(lite: Database, tmp_path: Path) -> None:
    """SQLite's default checkpoints in the commit past 1,000 WAL pages, on the writer's
    connection (and the WAL then starts over, staying near that size); here that happens
    only past WRITER_CHECKPOINT_PAGES, and `checkpoint()` copies the WAL from a reader's."""
    body = {"text": "x" * 4000}  # about a page a row
    for n in range(15):
        async with lite.begin() as s:
            rows = [dict(zip(COLUMNS, row(f"{n}-{i}", body), strict=True)) for i in range(100)]
            await s.execute(insert(SEEN), rows)
    wal = tmp_path / "lite.db-wal"
    assert wal.stat().st_size > 1400 * 4096
    in_wal, copied = cast(tuple[int, int], await lite.checkpoint())
    assert 1500 < in_wal < WRITER_CHECKPOINT_PAGES and copied == in_wal
    async with lite.begin() as s:  # the next write starts the WAL over
        await s.execute(insert(SEEN).values(dict(zip(COLUMNS, row("last"), strict=True))))
    assert cast(tuple[int, int], await lite.checkpoint())[0] < 10
    assert await count(lite) == 1501


async def test_without_a_one_connection_writer_there_is_no_checkpointing() -> None:
    memory = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert await memory.checkpoint() is None
        await asyncio.wait_for(memory.keep_wal_short(every=0), 1)  # returns at once
    finally:
        await memory.dispose()


async def test_readers_keep_a_small_page_cache(lite: Database) -> None:
    async with lite.readers.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar() == -READER_CACHE_KIB
    async with lite.engine.connect() as conn:  # the writer keeps SQLite's default
        assert (await conn.exec_driver_sql("PRAGMA cache_size")).scalar() == -2000
