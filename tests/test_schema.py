"""Migrations build the schema the models describe, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
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
        assert await schema.current_revision(db.engine) == schema.head_revision()
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
