"""Engine and session factory, and the column types every table shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import DateTime, Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState
from sqlalchemy.types import TypeDecorator

from bot.sqlite_driver import one_trip_dbapi

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware datetimes; refuses naive ones.

    SQLite keeps no offset, so without this a value would come back naive and compare wrongly
    against the aware domain clock.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime refused: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


READERS = 2  # SQLite connections for reads beside the writer's (Database.reading)
READER_CACHE_KIB = 512
CHECKPOINT_SECONDS = 1.0  # Database.keep_wal_short
# The WAL's size (pages) at which the writer checkpoints it itself, in its commit: only when
# nothing else does (a command-line run, or keep_wal_short not keeping up).
WRITER_CHECKPOINT_PAGES = 10_000


# orjson for JSON columns: every callback's message is written as JSON before it is answered,
# 0.9 µs a check-in against json.dumps' 4.1. The options keep json's ways: datetimes and
# dataclasses are refused as json refuses them, int keys become strings as json makes them.
_JSON_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def json_text(value: Any) -> str:
    """A JSON column's value as stored."""
    return orjson.dumps(value, option=_JSON_OPTIONS).decode()


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 30})
        one_writer = _one_writer(url, kwargs)
        if one_writer:
            # A short write may run on the event loop's thread while the connection is checked
            # out and aiosqlite's thread idle (bot.sqlite_driver.run_here). Only where the pool
            # hands each connection to one user at a time: a :memory: database shares one.
            kwargs["connect_args"] = {"check_same_thread": False, **kwargs["connect_args"]}
            # SQLite has one writer. Connections that queue here, in the event loop, get it in
            # turn; connections that each wait in SQLite's busy handler poll for it with sleeps
            # of up to 100 ms, and a burst of messages then takes seconds instead of ms.
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_reset_on_return", None)  # _roll_back_if_open instead
        if parsed.get_driver_name() == "aiosqlite":
            kwargs.setdefault("module", one_trip_dbapi())  # a round trip a statement
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if one_writer:
            event.listen(engine.sync_engine, "connect", _sqlite_one_writer)
        event.listen(engine.sync_engine, "reset", _roll_back_if_open)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # JIT compiles a plan whose estimate passes 100,000: 督办's overdue query on a heavy day
    # (39,000 rows scattered over 1,000,000) spent 1.15 s compiling and 0.2 s running.
    kwargs.setdefault("connect_args", {"server_settings": {"jit": "off"}})
    return create_async_engine(url, **kwargs)


def _one_writer(url: str, kwargs: dict[str, Any]) -> bool:
    """A SQLite file with the default pool: make_engine gives it one connection."""
    parsed = make_url(url)
    return (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and "poolclass" not in kwargs
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _roll_back_if_open(dbapi_conn: Any, record: Any, state: PoolResetState) -> None:
    """The pool's reset, minus the ROLLBACK after every commit: each statement to aiosqlite
    is a round trip to its thread, and the one writer's connection is returned after every
    transaction. SQLite itself says whether a transaction is still open."""
    if not state.asyncio_safe or state.transaction_was_reset:
        return
    if record.driver_connection.in_transaction:
        dbapi_conn.rollback()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_one_writer(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
    cur.close()


def _sqlite_reader(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")  # a write here would bypass the one writer's queue
    # A look scans the queue's index once a pass: the OS's file cache serves it as well, and
    # SQLite's default 2 MB a connection would count against the server's memory budget.
    cur.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
    cur.close()


def _reader_engine(url: str, engine: AsyncEngine, kwargs: dict[str, Any]) -> AsyncEngine:
    """On a SQLite file whose writes queue for one connection, connections of their own for
    reads; elsewhere the engine itself."""
    if not _one_writer(url, kwargs):
        return engine
    readers = make_engine(url, **{**kwargs, "pool_size": READERS})
    event.listen(readers.sync_engine, "connect", _sqlite_reader)
    return readers


class Database:
    """The engine plus a session factory; `begin()` is one unit of work, `reading()` one
    that only reads."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = make_sessionmaker(self.engine)
        self.readers = _reader_engine(url, self.engine, engine_kwargs)
        self._reads = (
            self.sessions if self.readers is self.engine else make_sessionmaker(self.readers)
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads, from a snapshot of what was committed when it began.

        On SQLite every write waits for the one writer connection, and so does each
        callback's acceptance (bot/inbound.py): a read there of tens of milliseconds, the
        delivery worker's look over a long queue, held every callback up for as long. Here it
        runs on a connection of its own (WAL: a reader and the writer do not wait for each
        other), in its own thread, while the writer goes on."""
        async with self._reads() as session, session.begin():
            yield session

    async def checkpoint(self) -> tuple[int, int] | None:
        """Copy what the WAL holds into the database file, without waiting for anyone
        (PASSIVE); (pages in the WAL, pages copied), or None where there is nothing to do.

        SQLite's own checkpoint runs inside the commit that fills the WAL past its limit,
        on the writer's connection: that commit, and every callback queued behind it, then
        waits for the copy and two fsyncs. Done here, on a reader's connection in its own
        thread, the writer goes on meanwhile."""
        if self.readers is self.engine:
            return None
        async with self.readers.connect() as conn:
            result = await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            _, in_wal, copied = list(result.one())  # busy, pages in the WAL, pages copied
        return int(in_wal), int(copied)

    async def keep_wal_short(self, every: float = CHECKPOINT_SECONDS) -> None:
        """Checkpoint every `every` seconds until cancelled: the server's, beside the writer."""
        if self.readers is self.engine:
            return
        while True:
            await asyncio.sleep(every)
            try:
                await self.checkpoint()
            except Exception as e:  # busy or away: the next one copies what this one did not
                log.warning("WAL checkpoint failed: %s", type(e).__name__)

    async def dispose(self) -> None:
        if self.readers is not self.engine:
            await self.readers.dispose()
        await self.engine.dispose()


def insert_or_ignore(
    dialect: str, table: Any, values: dict[str, Any] | list[dict[str, Any]]
) -> Any:
    """INSERT … ON CONFLICT DO NOTHING, the one way to claim a key exactly once on both backends."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(values)
    return stmt.on_conflict_do_nothing()


_IGNORING: dict[tuple[str, Table, tuple[str, ...]], Any] = {}


async def claim(session: AsyncSession, table: Any, values: dict[str, Any]) -> bool:
    """Insert one row unless its unique key exists; True when this call inserted it.

    For a table the statement is built once per set of columns and the values are bound to
    it: the outbox claims a key for every message, and building a statement costs more than
    running it."""
    dialect = session.get_bind().dialect.name
    if not isinstance(table, Table):  # a mapped class: rare, built each time
        stmt = insert_or_ignore(dialect, table, values)
        return cast(CursorResult[Any], await session.execute(stmt)).rowcount == 1
    key = (dialect, table, tuple(values))
    prebuilt = _IGNORING.get(key)
    if prebuilt is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        prebuilt = _IGNORING[key] = insert(table).on_conflict_do_nothing()
    result = cast(CursorResult[Any], await session.execute(prebuilt, values))
    return result.rowcount == 1
