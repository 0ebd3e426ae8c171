"""Shared fixtures: a real database per test (SQLite, or PostgreSQL when
DUBAN_TEST_DATABASE_URL names a server), a controllable clock, and configurations."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot import schema
from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from tests.configs import SAMPLE_CONFIG  # noqa: F401  (re-exported for older tests)

SERVER_URL = os.environ.get("DUBAN_TEST_DATABASE_URL", "")
# Several instances sharing one server (advisory locks) and transactions meeting each other's
# row locks are PostgreSQL properties: these modules are collected only when the suite runs on
# PostgreSQL, as .ci/run's second stage does.
collect_ignore = (
    []
    if SERVER_URL.startswith("postgresql")
    else ["test_leader.py", "test_multi_instance.py", "test_dispatch_conflicts.py"]
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI))  # a Monday, 09:00


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own for each test."""
    if not SERVER_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    name = f"duban_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database."""
    database = Database(database_url)
    await schema.upgrade(database.engine)
    try:
        yield database
    finally:
        await database.dispose()


from tests.chat import chat  # noqa: E402, F401  (the whole bot, talked to over DingTalk)
