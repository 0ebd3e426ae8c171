"""Copying a ledger between databases, for benchmarking PostgreSQL with what only SQLite can
apply today: ``duban config apply`` of the province fails on PostgreSQL (bot/sync.py deletes
identities with one IN list of 200,004 parameters; asyncpg takes at most 32,767). The
benchmarks try the real apply first and copy only when it fails, saying so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from bot.bulk import insert_rows
from bot.db import Database
from bot.models import Base


async def copy_ledger(source: Database, target: Database) -> int:
    """Every table's rows from ``source`` into the empty, migrated ``target``; rows copied."""
    total = 0
    async with source.begin() as src, target.begin() as dst:
        for table in Base.metadata.sorted_tables:
            names = [c.name for c in table.columns]
            rows: list[Any] = [tuple(r) for r in (await src.execute(select(table))).all()]
            if rows:
                total += await insert_rows(dst, table, names, rows)
        if target.dialect == "postgresql":
            for table in Base.metadata.sorted_tables:
                column = table.columns.get("id")
                if column is not None and column.type.python_type is int:
                    await dst.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"coalesce(max(id), 1)) FROM {table.name}"
                        )
                    )
    return total


async def apply_or_copy(db: Database, loaded: Any, clock: Any) -> str:
    """``duban config apply`` on ``db``; on PostgreSQL, should it fail, apply to a temporary
    SQLite database and copy the ledger over. What happened, in a few words."""
    import tempfile

    from sqlalchemy.exc import DBAPIError

    from bot import schema
    from bot.startup import apply_config

    try:
        return (await apply_config(db, loaded, clock)).summary()
    except DBAPIError as exc:
        if db.dialect != "postgresql":
            raise
        reason = str(exc.orig).splitlines()[0][:120]
    with tempfile.TemporaryDirectory(prefix="duban-apply-") as tmp:
        lite = Database(f"sqlite+aiosqlite:///{tmp}/apply.db")
        try:
            await schema.upgrade(lite.engine)
            await apply_config(lite, loaded, clock)
            rows = await copy_ledger(lite, db)
        finally:
            await lite.dispose()
    return f"FAILED on PostgreSQL ({reason}); applied on SQLite and copied {rows} rows over"
