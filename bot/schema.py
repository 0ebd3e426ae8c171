"""Schema migrations with Alembic, driven through the app's own async engine.

Alembic, and the Mako templating it loads, stay out of a process until a migration runs:
together they hold some 10 MB for the life of the process, and a restart on a current schema
(every start but the first after an upgrade) needs only to read the revision, which is one
row of Alembic's own table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The revision this code expects: the last of migrations/versions. tests/test_schema.py checks
# it against Alembic's own head, so a new migration cannot be added without moving it.
HEAD = "0010"
_VERSIONS = "alembic_version"  # Alembic's table: one row, the revision applied


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(conn: Connection) -> str | None:
        if not inspect(conn).has_table(_VERSIONS):
            return None
        found = conn.execute(text(f"SELECT version_num FROM {_VERSIONS}")).scalars().all()
        if len(found) > 1:  # a branched history, which this project never makes
            raise RuntimeError(f"the database is at several revisions at once: {found}")
        return found[0] if found else None

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == HEAD


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    from alembic import command

    await _run(engine, lambda cfg: command.upgrade(cfg, target))


async def downgrade(engine: AsyncEngine, target: str) -> None:
    from alembic import command

    await _run(engine, lambda cfg: command.downgrade(cfg, target))


async def _run(engine: AsyncEngine, step: object) -> None:
    def run(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        step(cfg)  # type: ignore[operator]

    async with engine.begin() as conn:
        await conn.run_sync(run)
