"""Migrations build the schema the models describe, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from bot import schema
from bot.db import Database
from bot.models import Base


async def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await schema.current_revision(db.engine) is None
        assert not await schema.is_current(db.engine)
        await schema.upgrade(db.engine)
        assert await schema.current_revision(db.engine) == schema.HEAD
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert set(Base.metadata.tables) <= tables
    finally:
        await db.dispose()


async def test_migrations_match_the_models(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_to_empty_and_back(db: Database) -> None:
    await schema.downgrade(db.engine, "base")
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert not set(Base.metadata.tables) & tables
    await schema.upgrade(db.engine)
    assert await schema.is_current(db.engine)


def test_the_expected_revision_is_the_last_migration() -> None:
    head = ScriptDirectory.from_config(schema.alembic_config()).get_current_head()
    assert head == schema.HEAD


async def test_alembic_reads_the_revision_as_we_do(db: Database) -> None:
    async with db.engine.connect() as conn:
        theirs = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    assert theirs == await schema.current_revision(db.engine) == schema.HEAD


def test_serving_on_a_current_schema_loads_no_migration_tooling(database_url: str) -> None:
    """Alembic and Mako hold ~10 MB for the life of a process that imports them."""
    probe = (
        "import asyncio, sys\n"
        "import bot.app, bot.cli\n"
        "from bot import schema, startup\n"
        "from bot.db import Database\n"
        "async def main():\n"
        "    db = Database(sys.argv[1])\n"
        "    await startup.prepare_database(db, auto_migrate=True)\n"
        "    assert await schema.is_current(db.engine)\n"
        "    await db.dispose()\n"
        "    print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
        "asyncio.run(main())\n"
    )
    run = [sys.executable, "-c", probe, database_url]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "['alembic', 'mako']"  # the first start migrates
    again = subprocess.run(run, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "[]"
