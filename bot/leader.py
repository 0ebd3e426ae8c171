"""Which instance leads: a PostgreSQL session advisory lock, held on a connection of its own.

Any number of `duban serve` processes share one PostgreSQL behind a load balancer. All of them
take inbound traffic; the one holding the lock also runs the scheduler, the catch-up and the
delivery worker (bot.duties). Correctness never rests on the lock alone (inbound ids, job runs
and outbox claims are unique in the database), but one leader is what makes jobs fire once
on time and keeps one long connection per WeCom AI bot.

The lock lives on a dedicated asyncpg connection, outside SQLAlchemy's pool: a pooled
connection could be recycled, reset or handed to a request with the lock on it, and a pool
emptied by a burst of callbacks must not make the leader's check wait and step down.

Failure detection, both ways. A process that dies (SIGKILL, OOM, a crashed container) closes
its socket with it, the server ends the session and frees the lock at once: a follower, trying
every RETRY_SECONDS, takes over within about two seconds. A holder whose host or network
vanishes cannot close anything; the server's TCP keepalives, set on this connection, declare
it dead after about 5 + 3 × 2 = 11 s. The holder, checking every CHECK_SECONDS with a timeout,
notices within CHECK_SECONDS + TIMEOUT_SECONDS = 6 s and steps down first.

On SQLite there is one instance by definition: it leads from the start.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
CHECK_SECONDS = 2.0
TIMEOUT_SECONDS = 4.0
# Followers queue replies too: this tells the leader's worker to look at once instead of at
# its next poll.
OUTBOX_CHANNEL = "duban_outbox"
_SERVER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    # Keepalives wait while data is unacknowledged (a NOTIFY sent to a vanished leader), and
    # retransmissions go on for minutes: this bounds that case too (ms; PostgreSQL 12+).
    "tcp_user_timeout": "10000",
}
_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock; locks are per database already."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


async def connect(database_url: str, application_name: str) -> asyncpg.Connection:
    """A plain asyncpg connection with the engine's own connect arguments (host, ssl, …)."""
    url = make_url(database_url)
    given: dict[str, Any] = {**url.translate_connect_args(username="user"), **url.query}
    accepted = inspect.signature(asyncpg.connect).parameters
    params = {k: v for k, v in given.items() if k in accepted}
    settings = {**_SERVER_SETTINGS, "application_name": application_name[:63]}
    return await asyncpg.connect(**params, server_settings=settings, timeout=TIMEOUT_SECONDS)


@asynccontextmanager
async def startup_lock(database_url: str) -> AsyncIterator[None]:
    """Instances starting together take turns at migrating the schema and applying the
    configuration; a second would otherwise fail halfway through the first's migration."""
    if not is_postgres(database_url):
        yield
        return
    conn = await connect(database_url, "duban startup")
    try:
        key = lock_key("duban:startup")
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            log.info("another instance is starting: waiting for it to finish its migrations")
            await conn.execute("SELECT pg_advisory_lock($1)", key)
        yield
    finally:
        await conn.close()  # ends the session, and with it the lock


class Leadership:
    """``is_leader``; ``wait_for(True/False)`` for gaining and losing it; ``start()`` (one
    attempt, so a lone instance leads before it serves), ``run()`` until ``stop()``."""

    def __init__(
        self,
        database_url: str,
        instance: str,
        *,
        on_nudge: Callable[[], None] = lambda: None,
        name: str = "duban:leader",
        retry: float = RETRY_SECONDS,
        check: float = CHECK_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.database_url, self.instance, self.on_nudge = database_url, instance, on_nudge
        self.key, self.retry, self.check, self.timeout = lock_key(name), retry, check, timeout
        self.single = not is_postgres(database_url)
        self.is_leader = False
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._io = asyncio.Lock()  # one statement at a time on the connection
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Leadership({self.instance}, leader={self.is_leader})"

    async def wait_for(self, leading: bool) -> None:
        while self.is_leader != leading:
            await self._changed.wait()

    async def start(self) -> None:
        if self.single:
            log.info("SQLite: one instance by definition, so this one leads")
            self._become(True)
            return
        await self._attempt()
        if not self.is_leader:
            log.info("instance %s follows; it takes over when the leader goes", self.instance)

    async def run(self) -> None:
        """Keep trying (follower) or checking (leader) until ``stop()``."""
        if self.single:
            await self._stopping.wait()
            return
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                delay = self.check if self.is_leader else self.retry
                await asyncio.wait_for(self._stopping.wait(), delay)
                break
            await self._attempt()

    async def stop(self) -> None:
        """Give the lock up (by ending the session). The caller has stopped the leader's
        duties first, so that a successor never overlaps them."""
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        async with self._io:
            if self._conn is not None:
                with suppress(*_FAILURES):
                    await self._conn.close(timeout=self.timeout)
                self._conn.terminate()  # a no-op once closed
                self._conn = None
        if self.is_leader:
            log.info("leadership released on shutdown")
            self._become(False)

    def nudge(self) -> None:
        """Something was queued: wake the leader's worker, here or on another instance."""
        if self.is_leader:
            self.on_nudge()
        elif self._conn is not None and not self._stopping.is_set():
            task = asyncio.get_running_loop().create_task(self._notify())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _notify(self) -> None:
        try:
            async with self._io:
                if self._conn is not None:
                    await self._conn.execute(f"NOTIFY {OUTBOX_CHANNEL}", timeout=self.timeout)
        except _FAILURES as e:  # the leader polls anyway: the message waits a second or two
            log.warning("could not notify the leader of a queued message: %s", _describe(e))

    async def _attempt(self) -> None:
        try:
            async with self._io:
                if self._stopping.is_set():
                    return
                if self._conn is None:
                    self._conn = await connect(self.database_url, f"duban {self.instance}")
                    await self._conn.add_listener(OUTBOX_CHANNEL, self._heard)
                if self.is_leader:
                    await self._conn.fetchval("SELECT 1", timeout=self.timeout)
                elif await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self.key, timeout=self.timeout
                ):
                    log.info("leadership gained by instance %s", self.instance)
                    self._become(True)
        except _FAILURES as e:
            self._lost(e)

    def _lost(self, error: BaseException) -> None:
        # Terminated, not closed: a lock taken by a statement that timed out here may still
        # be held by the session, and must go with it.
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        if self.is_leader:
            log.warning("leadership lost (%s): stepping down", _describe(error))
            self._become(False)
        else:
            log.warning("leadership: database unreachable (%s); retrying", _describe(error))

    def _heard(self, *_: Any) -> None:
        if self.is_leader:
            self.on_nudge()

    def _become(self, leading: bool) -> None:
        self.is_leader = leading
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
