"""aiosqlite with one round trip to its thread per statement instead of three or four.

aiosqlite runs every call on its connection in a thread of its own. Each call is a round trip:
a queue put that wakes the thread, then a `call_soon_threadsafe` that wakes the event loop.
SQLAlchemy's adapter makes a call each to open a cursor, execute, fetch the rows and close
the cursor. On a small VM the wake-ups, not SQLite, are what a statement costs. A one-row
transaction takes 50 µs in `sqlite3` itself and 1.4 ms of CPU through the session. Here the
cursor's whole life runs as one call in aiosqlite's thread.
bench/RESULTS-inbound.md, "Fourth round", has the measurements.

It plugs in as the DBAPI module SQLAlchemy's aiosqlite dialect is given (`create_engine`'s
documented `module` argument). It subclasses that dialect's adapter classes and calls aiosqlite's
`_execute`, which has no public equivalent. pyproject.toml therefore pins SQLAlchemy and aiosqlite
to the minor versions it was written against. The whole test suite runs through it on SQLite.
Server-side cursors (`session.stream`) keep SQLAlchemy's own adapter.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# What one statement leaves behind: description, rows, rowcount, lastrowid.
Outcome = tuple[Any, list[Any], int, int | None]
T = TypeVar("T")


def run_statement(
    conn: sqlite3.Connection, operation: str, parameters: Any = None, many: bool = False
) -> Outcome:
    """One statement run, its rows fetched and its cursor closed: the body of a call to
    aiosqlite's thread, the only thread that uses `conn`."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        described = cursor.description
        rows = cursor.fetchall() if described else []
        return described, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


async def in_thread(driver: Any, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work(connection)` in the thread of `driver`, an aiosqlite connection, as one round
    trip (aiosqlite's private, untyped `_execute`: see above)."""
    result: T = await driver._execute(work, driver._conn)
    return result


def run_here(driver: Any, work: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
    """`work(connection)` on the calling thread, the event loop's, when it can run without
    waiting for SQLite's lock: `(result,)`, or None when the lock is taken (another process
    writes) or the connection is bound to its thread. Then nothing has changed, and the
    caller sends `work` to the thread, where waiting blocks nobody.

    For a short write the callers are all waiting for (the inbox's claims): the round trip
    to aiosqlite's thread makes the loop wait for the thread to get the GIL, and the loop
    sits idle meanwhile; 50 callers claiming in turn got 6–10% more done a second inline.
    The caller must hold the connection (checked out of the pool) and have awaited every
    earlier call on it, so aiosqlite's thread is not using it."""
    conn: sqlite3.Connection = driver._conn
    try:
        wait_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    except sqlite3.ProgrammingError:  # check_same_thread: see bot.db.make_engine
        return None
    conn.execute("PRAGMA busy_timeout=0")
    try:
        return (work(conn),)
    except sqlite3.OperationalError as e:
        if getattr(e, "sqlite_errorcode", 0) & 0xFF not in (
            sqlite3.SQLITE_BUSY,
            sqlite3.SQLITE_LOCKED,
        ):
            raise
        if conn.in_transaction:
            conn.rollback()
        return None
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(wait_ms)}")


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statements each run, fetch and close in one call to aiosqlite's thread;
    afterwards it only hands out what that call brought back."""

    __slots__ = ("_outcome_description", "_outcome_lastrowid", "_outcome_rowcount", "_size")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened here: that would be a round trip of its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome_description: Any = None
        self._outcome_rowcount = -1
        self._outcome_lastrowid: int | None = None
        self._size = 1

    @property
    def description(self) -> Any:
        return self._outcome_description

    @property
    def rowcount(self) -> int:
        return self._outcome_rowcount

    @property
    def lastrowid(self) -> Any:
        return self._outcome_lastrowid

    @property
    def arraysize(self) -> int:
        return self._size

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._size = value

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            outcome = await in_thread(
                self._connection, lambda conn: run_statement(conn, operation, parameters, many)
            )
        described, rows, self._outcome_rowcount, self._outcome_lastrowid = outcome
        self._outcome_description = described
        self._rows = collections.deque(rows)

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        return None  # closed in the thread already, with its rows kept

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None  # sqlite3 ignores them too

    def nextset(self) -> None:
        self._rows.clear()  # one statement, one result


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # a subclass; mypy sees the base inferred


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)


def one_trip_dbapi() -> OneTripDBAPI:
    """The module for `create_async_engine(url, module=…)` on a sqlite+aiosqlite URL."""
    return OneTripDBAPI(aiosqlite, sqlite3)
