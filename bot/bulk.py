"""Writing many rows at once through the driver: COPY on PostgreSQL, the driver's own
executemany on SQLite, and the inbox's claims in one round trip on either.

SQLAlchemy's executemany runs every value of every row through its type processing in
Python; a province's monthly breakdown writes some 700,000 task instances, and that alone
took longer than the whole job may. Here each column's processing (UTC conversion of
datetimes, say) runs once per distinct value, and the rows go to the driver as plain tuples.
The stored values are exactly what SQLAlchemy itself would have written.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import JSON, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.sqlite_driver import in_thread, run_here, run_statement

BATCH = 20_000  # rows per driver call: bounded memory for the converted tuples


async def insert_rows(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    skip_existing: bool = False,
) -> int:
    """Insert ``rows`` (values in the order of ``columns``); the number of rows given.

    ``skip_existing``: a row whose unique key is taken is left out (ON CONFLICT DO NOTHING;
    on PostgreSQL COPY cannot skip, so the rows are copied into a temporary table first)."""
    driver, postgres, batches = await _batches(session, table, columns, rows)
    marks = (f"${i}" if postgres else "?" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(marks)})"
    if skip_existing:
        sql += " ON CONFLICT DO NOTHING"
    written = 0
    for batch in batches:
        if postgres and skip_existing:
            await _copy_skipping_existing(driver, table.name, columns, batch)
        elif postgres:
            await driver.copy_records_to_table(table.name, records=batch, columns=list(columns))
        else:
            await driver.executemany(sql, batch)
        written += len(batch)
    return written


async def insert_new_returning(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """PostgreSQL: ``insert_rows(skip_existing=True)``, and ``returning`` of the rows it wrote.
    SQLAlchemy's INSERT … RETURNING of many rows sends them in statements of a thousand, each
    value through its type processing: 0.24 s for 督办's 12,000 steps of a heavy day."""
    driver, postgres, batches = await _batches(session, table, columns, rows)
    assert postgres, "COPY is PostgreSQL's"
    found: list[tuple[Any, ...]] = []
    for batch in batches:
        found += await _copy_skipping_existing(driver, table.name, columns, batch, returning)
    return found


async def _batches(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> tuple[Any, bool, Iterator[list[tuple[Any, ...]]]]:
    """The session's driver connection, whether it is PostgreSQL's, and the rows converted
    as SQLAlchemy would convert them, ``BATCH`` at a time."""
    await session.flush()  # what the session holds goes first, as it would with insert()
    conn = await session.connection()
    dialect = conn.dialect  # PostgreSQL (asyncpg) or SQLite (aiosqlite), as bot.db serves
    # The transaction must be open on the driver connection before it is used directly.
    await conn.execute(select(1))
    driver: Any = (await conn.get_raw_connection()).driver_connection
    convert = [_converter(table, name, dialect) for name in columns]

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        source = iter(rows)
        while chunk := list(islice(source, BATCH)):
            # Column by column: one conversion function per column, run by map, not per cell.
            cols: list[Iterable[Any]] = list(zip(*chunk, strict=True))
            for i, c in enumerate(convert):
                if c is not None:
                    cols[i] = map(c, cols[i])
            yield list(zip(*cols, strict=True))

    return driver, dialect.name == "postgresql", batches()


async def _copy_skipping_existing(
    driver: Any,
    table: str,
    columns: Sequence[str],
    batch: list[tuple[Any, ...]],
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """PostgreSQL: COPY into a temporary table of the same columns, then INSERT … SELECT …
    ON CONFLICT DO NOTHING. An executemany sends each row as a statement of its own: 46 µs a
    row, 0.5 s of 督办's heaviest day (10,360 posts) and seconds of 提示's 113,400."""
    names = ", ".join(columns)
    staging = f"_staged_{table}"
    await driver.execute(
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS"
        f" SELECT {names} FROM {table} WITH NO DATA"
    )
    await driver.copy_records_to_table(staging, records=batch, columns=list(columns))
    insert = (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ORDER BY ctid"
        " ON CONFLICT DO NOTHING"
    )
    if not returning:
        await driver.execute(f"{insert}; DROP TABLE {staging}")
        return []
    found = await driver.fetch(f"{insert} RETURNING {', '.join(returning)}")
    await driver.execute(f"DROP TABLE {staging}")
    return [tuple(r) for r in found]


async def insert_new(
    engine: AsyncEngine,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING `returning`, committed on its own: those
    columns of the rows that were new. The inbox claims every callback's id this way before
    answering it, without the session's and insertmanyvalues' work per statement.

    SQLite: the statement and its commit at once, on the event loop's thread while SQLite's
    lock is free (`run_here`), else in one call to aiosqlite's thread. A claim of 10 rows,
    3,000 in a loop: 370–394 µs of CPU each in one call to the thread, against 456–496 in two.

    PostgreSQL: one statement committed as it runs (no BEGIN and COMMIT of their own), each
    column's values bound as one array and the rows made by ``unnest``, so that it is prepared
    once whatever the number of rows."""
    async with engine.connect() as conn:
        dialect = conn.dialect
        # Remembered per value for this call: a batch's rows share their stamps.
        convert = [_converter(table, name, dialect) for name in columns]
        driver: Any = (await conn.get_raw_connection()).driver_connection
        if dialect.name == "postgresql":
            arrays = [
                list(map(c, values)) if c is not None else list(values)
                for c, values in zip(convert, zip(*rows, strict=True), strict=True)
            ]
            sql = _unnest_insert_sql(table, tuple(columns), tuple(returning), dialect)
            # Outside a transaction the driver commits the statement on its own.
            return [tuple(r) for r in await driver.fetch(sql, *arrays)]
        params = [
            c(v) if c is not None else v for row in rows for c, v in zip(convert, row, strict=True)
        ]
        sql = _insert_new_sql(table.name, tuple(columns), len(rows), tuple(returning))

        def run(raw: sqlite3.Connection) -> list[Any]:  # the statement and its commit at once
            found = run_statement(raw, sql, params)[1]
            raw.commit()
            return found

        # An error leaves the transaction open; the pool's reset rolls it back (bot.db).
        done = run_here(driver, run)
        found = done[0] if done is not None else await in_thread(driver, run)
    return [tuple(r) for r in found]


@functools.lru_cache(maxsize=16)
def _unnest_insert_sql(
    table: Table, columns: tuple[str, ...], returning: tuple[str, ...], dialect: Any
) -> str:
    """Built once per table and columns: compiling the columns' types is work of its own."""
    types = (table.c[name].type.compile(dialect=dialect) for name in columns)
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1))
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
    )


def _bind_processor(table: Table, name: str, dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy does to a value of this column before the driver gets it."""
    return table.c[name].type.dialect_impl(dialect).bind_processor(dialect)


@functools.lru_cache(maxsize=64)
def _insert_new_sql(
    table: str, columns: tuple[str, ...], rows: int, returning: tuple[str, ...]
) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"
        f" ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
    )


def _converter(table: Table, name: str, dialect: Any) -> Callable[[Any], Any] | None:
    """The column's bind processing, remembered per value (deadlines and stamps repeat)."""
    process = _bind_processor(table, name, dialect)
    # JSON: 1 and True are equal keys, not equal values.
    if process is None or isinstance(table.c[name].type, JSON):
        return process
    seen: dict[Any, Any] = {}

    def convert(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = out = process(value)
            return out

    return convert
