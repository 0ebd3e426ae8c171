"""Accepting inbound messages: drop the ones already seen, hand the rest on after the 200.

Platforms re-deliver callbacks that are slow to answer (WeCom after 5 s, three times), so the
route only records the message id and queues the work; the id is unique in the database,
which makes a retry, a Stream redelivery or a second instance drop the duplicate.

Under load the ids are written by one writer in batches: while one INSERT is in flight the
callbacks that arrive meanwhile wait for the next, so a burst costs a few transactions instead
of one each (SQLite has a single writer however many connections ask). The work then runs in
a few workers (one on SQLite) in arrival order; a burst queues, and the queue is bounded, so
a flood slows the answers down instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from bot.clock import Clock
from bot.db import Database, insert_or_ignore
from bot.messages import Inbound
from bot.metrics import Metrics
from bot.models import InboundSeen

log = logging.getLogger(__name__)
Dispatch = Callable[[Inbound], Awaitable[None]]
Key = tuple[str, str]
Claim = tuple[list[Key], datetime, "asyncio.Future[set[Key]]"]  # ids, seen at, caller's answer

# Messages handled at once. SQLite runs one transaction at a time, so a second worker would
# only wait for it, and every worker queued there is one more the next callback waits behind.
WORKERS = {"sqlite": 1}
DEFAULT_WORKERS = 4
BACKLOG = 10_000  # accepted messages waiting for a worker before callbacks are made to wait
BATCH = 500  # callbacks per INSERT (mostly one id each), well inside the parameter limits


class Inbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        dispatch: Dispatch,
        metrics: Metrics | None = None,
        *,
        workers: int | None = None,
        backlog: int = BACKLOG,
    ) -> None:
        self.db = db
        self.clock = clock
        self.dispatch = dispatch
        self.metrics = metrics
        self._workers = workers or WORKERS.get(db.dialect, DEFAULT_WORKERS)
        self._backlog = backlog
        self._queue: deque[Inbound] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._room.set()
        # Ids waiting for the writer, each with the future its caller awaits.
        self._claims: list[Claim] = []
        self._writer: asyncio.Task[None] | None = None
        self._accepting = 0  # callers that have not queued their work yet

    async def accept(self, messages: Iterable[Inbound]) -> list[Inbound]:
        """Record the ids; return the messages not seen before, whose work is now queued."""
        msgs = list(messages)
        if not msgs:
            return []
        keys: list[Key] = [(m.platform, m.event_id[:191]) for m in msgs]
        self._accepting += 1
        try:
            await self._room.wait()
            claimed = await self._claim(keys)
        finally:
            self._accepting -= 1
        fresh = []
        for msg, key in zip(msgs, keys, strict=True):
            ok = key in claimed
            claimed.discard(key)  # the same id twice in one call: the second is a duplicate
            if self.metrics:
                self.metrics.count_inbound(msg.platform, "accepted" if ok else "duplicate")
            if not ok:
                log.info("duplicate %s message %s dropped", msg.platform, msg.event_id)
                continue
            fresh.append(msg)
            self._queue.append(msg)
        self._start_workers()
        return fresh

    def _claim(self, keys: list[Key]) -> asyncio.Future[set[Key]]:
        future: asyncio.Future[set[Key]] = asyncio.get_running_loop().create_future()
        self._claims.append((keys, self.clock.now(), future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        """The single writer: everything that arrived during one INSERT goes in the next."""
        try:
            while self._claims:
                batch, self._claims = self._claims[:BATCH], self._claims[BATCH:]
                await self._settle(batch)
        finally:
            self._writer = None

    async def _settle(self, batch: list[Claim]) -> None:
        try:
            inserted = await self._insert(batch)
        except Exception as e:
            if len(batch) > 1:
                # One bad id must not fail the callbacks it happened to share an INSERT with:
                # each goes again on its own, and only the bad one fails.
                for claim in batch:
                    await self._settle([claim])
                return
            if not batch[0][2].done():
                batch[0][2].set_exception(e)  # its callback is answered with the failure
            return
        for keys, _, future in batch:
            # An id asked for by two callers in one batch belongs to the first.
            mine = {k for k in keys if k in inserted}
            inserted -= mine
            if not future.done():
                future.set_result(mine)

    async def _insert(self, batch: list[Claim]) -> set[Key]:
        rows: dict[Key, datetime] = {}
        for keys, seen_at, _ in batch:
            for key in keys:
                rows.setdefault(key, seen_at)
        values = [{"platform": p, "event_id": e, "seen_at": at} for (p, e), at in rows.items()]
        table = InboundSeen.__table__
        async with self.db.begin() as session:
            stmt = insert_or_ignore(self.db.dialect, table, values).returning(
                table.c.platform, table.c.event_id
            )
            return {(p, e) for p, e in (await session.execute(stmt)).all()}

    def _start_workers(self) -> None:
        while self._queue and len(self._running) < self._workers:
            task = asyncio.create_task(self._work())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if len(self._queue) >= self._backlog:
            self._room.clear()

    async def _work(self) -> None:
        while self._queue:
            msg = self._queue.popleft()
            if len(self._queue) < self._backlog:
                self._room.set()
            await self._run(msg)

    async def _run(self, msg: Inbound) -> None:
        try:
            await self.dispatch(msg)
        except Exception:  # the boundary: one bad message must not take the others down
            log.exception("handling %s message %s failed", msg.platform, msg.event_id)

    async def drain(self) -> None:
        """Wait for the work in flight: on shutdown, and in tests instead of sleeping."""
        while self._running or self._writer is not None or self._accepting:
            pending = [*self._running, *([self._writer] if self._writer else [])]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            else:  # a caller's ids are claimed; it queues its work on its next step
                await asyncio.sleep(0)
