"""Accepting inbound messages: drop the ones already seen, hand the rest on after the 200.

Platforms re-deliver callbacks that are slow to answer (WeCom after 5 s, three times), so the
route only records the message and queues the work; the id is unique in the database, which
makes a retry, a Stream redelivery or a second instance drop the duplicate.

The message is kept with its id until the transaction that handles it marks it handled
(`take`), so one accepted just before the process died is not lost: the next start, or any
instance's periodic sweep once the message has waited longer than anyone would take, handles
it, and the mark makes sure only one run ever does.

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulk import insert_new
from bot.clock import Clock
from bot.db import Database
from bot.messages import Inbound, inbound_from_record, inbound_record
from bot.metrics import Metrics
from bot.models import InboundSeen
from bot.table_stats import Growth

log = logging.getLogger(__name__)
Dispatch = Callable[[Inbound], Awaitable[None]]
DispatchMany = Callable[[Sequence[Inbound]], Awaitable[None]]
Key = tuple[str, str]
Claim = tuple[list[tuple[Key, Inbound]], "asyncio.Future[set[Key]]"]  # the answer

# Messages handled at once. SQLite runs one transaction at a time, so a second worker would
# only wait for it, and every worker queued there is one more the next callback waits behind.
WORKERS = {"sqlite": 1}
DEFAULT_WORKERS = 4
# Messages waiting for a worker are kept in memory up to BACKLOG; past it only their ids are
# (the messages themselves are stored), and past LIMIT callbacks are made to wait.
BACKLOG = 2_000
LIMIT = 200_000
RELOAD = 500  # stored messages read back at a time once the memory queue has run dry
# While callbacks keep arriving, handling takes at most this share of the event loop: the
# platforms need their 200 within seconds (or they send again, which adds load), the people
# their reply within a minute. The share is the inbox's, whatever its number of workers.
HANDLING_SHARE = 0.25
# Messages given to `dispatch_many` at once: one transaction for a run of check-ins instead of
# one each. While callbacks arrive on SQLite, fewer: a transaction there holds the one
# connection that the next callbacks' ids wait for, so it should take about BUSY_HOLD at most.
# PostgreSQL's claims do not wait for the handling, which keeps its batches whole.
HANDLE_AT_ONCE = 50
BUSY_HOLD = 0.01
BUSY_SECONDS = 0.1  # callbacks within this long count as "arriving"
BATCH = 500  # callbacks per INSERT (mostly one id each), well inside the parameter limits
# A message still unhandled after this long was accepted by a process that is gone (or
# hopelessly behind): any instance's sweep takes it over.
ORPHANED_AFTER = timedelta(minutes=2)
SWEEP_SECONDS = 30.0
SWEEP_BATCH = 500
# A message whose handling killed the process this many times is set aside, not retried
# forever (each restart would die on it again).
MAX_ATTEMPTS = 3

_SEEN = cast(Table, InboundSeen.__table__)
_KEY = (_SEEN.c.platform == bindparam("p")) & (_SEEN.c.event_id == bindparam("e"))
_TAKE = (
    update(_SEEN)
    .where(_KEY, _SEEN.c.handled_at.is_(None))
    .values(handled_at=bindparam("now"), body=null())
)
_HANDLED_AT = select(_SEEN.c.handled_at).where(_KEY)
_ONE_PLATFORM = (_SEEN.c.platform == bindparam("p")) & _SEEN.c.event_id.in_(
    bindparam("ids", expanding=True)
)
_TAKE_MANY = (
    update(_SEEN)
    .where(_ONE_PLATFORM, _SEEN.c.handled_at.is_(None))
    .values(handled_at=bindparam("now"), body=null())
    .returning(_SEEN.c.event_id)
)
_STORED = select(_SEEN.c.event_id).where(_ONE_PLATFORM)
_WAITING = select(_SEEN.c.event_id, _SEEN.c.body).where(_ONE_PLATFORM, _SEEN.c.handled_at.is_(None))
_RECOVER = (
    update(_SEEN)
    .where(_KEY, _SEEN.c.handled_at.is_(None), _SEEN.c.attempts == bindparam("was"))
    .values(attempts=bindparam("was") + 1)
)
_SET_ASIDE = (
    update(_SEEN).where(_KEY, _SEEN.c.handled_at.is_(None)).values(handled_at=bindparam("now"))
)


_CLAIMED = ("platform", "event_id", "seen_at", "body", "attempts")


def _by_platform(keys: Iterable[Key]) -> dict[str, list[str]]:
    """Ids grouped by platform: one `event_id IN (…)` per platform."""
    found: dict[str, list[str]] = {}
    for p, e in keys:
        found.setdefault(p, []).append(e)
    return found


def message_key(msg: Inbound) -> Key:
    """The message's identity in `inbound_seen`."""
    return (msg.platform, msg.event_id[:191])


async def take(session: AsyncSession, msg: Inbound, now: datetime) -> bool:
    """Mark the message handled, in the transaction that handles it; False when another run
    already did (a copy recovered by a sweep, or another instance), and then there is nothing
    left to do. First in the transaction: on PostgreSQL a second run waits here for the first.
    """
    p, e = message_key(msg)
    done = await session.execute(_TAKE, {"p": p, "e": e, "now": now})
    if getattr(done, "rowcount", 0) == 1:
        return True
    # No row at all: the message did not come through an inbox (a test's or a tool's direct
    # call), so nobody else can be handling it.
    return await session.scalar(_HANDLED_AT, {"p": p, "e": e}) is None


async def take_many(session: AsyncSession, msgs: Iterable[Inbound], now: datetime) -> set[Key]:
    """`take` for messages handled in one transaction: the keys of those still to handle."""
    taken: set[Key] = set()
    for p, ids in _by_platform(message_key(m) for m in msgs).items():
        got = {e for (e,) in await session.execute(_TAKE_MANY, {"p": p, "ids": ids, "now": now})}
        if len(got) < len(ids):  # as in `take`: a message with no row at all is handled here
            stored = {e for (e,) in await session.execute(_STORED, {"p": p, "ids": ids})}
            got.update(e for e in ids if e not in stored)
        taken.update((p, e) for e in got)
    return taken


class HandlingGate:
    """Handling's share of the event loop while callbacks arrive: each batch's length puts
    off the next batch of every worker. Four workers each resting three times their own
    batch's length would between them keep the loop busy all the time."""

    def __init__(self, share: float) -> None:
        self._rest_per_second = 1 / share - 1
        self._opens_at = 0.0  # event-loop time

    def handled(self, now: float, took: float) -> None:
        self._opens_at = max(self._opens_at, now) + took * self._rest_per_second

    def rest(self, now: float) -> float:
        """Seconds until a batch may start."""
        return max(0.0, self._opens_at - now)


class Inbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        dispatch: Dispatch,
        metrics: Metrics | None = None,
        *,
        dispatch_many: DispatchMany | None = None,
        at_once: int = HANDLE_AT_ONCE,
        workers: int | None = None,
        backlog: int = BACKLOG,
        limit: int = LIMIT,
    ) -> None:
        self.db = db
        self.clock = clock
        self.dispatch, self.dispatch_many = dispatch, dispatch_many
        # The dispatch marks each message handled itself (`take`, in its own transaction), so
        # a second UPDATE after it would find nothing: bot.dispatch.Dispatcher does.
        self.dispatch_takes = False
        self._at_once = at_once
        self._per_message = 0.0  # seconds one message took lately, in company
        self._shrink_batches = db.dialect == "sqlite"
        self._gate = HandlingGate(HANDLING_SHARE)
        self.metrics = metrics
        self._workers = workers or WORKERS.get(db.dialect, DEFAULT_WORKERS)
        self._backlog, self._limit = backlog, limit
        self._queue: deque[Inbound] = deque()
        self._overflow: deque[Key] = deque()  # accepted past the backlog: stored, not in memory
        self._last_callback = -1.0  # event-loop time of the last message accepted
        self.accepted = 0  # messages accepted since start
        self._running: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._room.set()
        # Ids waiting for the writer, each with the future its caller awaits.
        self._claims: list[Claim] = []
        self._writer: asyncio.Task[None] | None = None
        self._accepting = 0  # callers that have not queued their work yet
        self._mine: set[Key] = set()  # queued or running here: a sweep leaves them alone
        self._done: list[Key] = []  # handled here, to be marked so by the writer
        self._closed = False
        self._seen_stats = Growth(db, "inbound_seen")

    async def accept(self, messages: Iterable[Inbound]) -> list[Inbound]:
        """Record the ids; return the messages not seen before, whose work is now queued."""
        msgs = list(messages)
        if not msgs:
            return []
        keys: list[Key] = [message_key(m) for m in msgs]
        self._accepting += 1
        try:
            await self._room.wait()
            claimed = await self._claim(list(zip(keys, msgs, strict=True)))
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
            self._enqueue(msg)
        self.accepted += len(fresh)
        self._last_callback = asyncio.get_running_loop().time()
        self._start_workers()
        return fresh

    def _enqueue(self, msg: Inbound) -> None:
        key = message_key(msg)
        self._mine.add(key)
        if len(self._queue) < self._backlog and not self._overflow:
            self._queue.append(msg)
        else:
            self._overflow.append(key)

    @property
    def waiting(self) -> int:
        """Messages accepted here and not yet handled."""
        return len(self._queue) + len(self._overflow)

    @property
    def idle(self) -> bool:
        """Nothing queued, being handled or being written."""
        return not (self.waiting or self._running or self._writer is not None or self._accepting)

    def _claim(self, entries: list[tuple[Key, Inbound]]) -> asyncio.Future[set[Key]]:
        future: asyncio.Future[set[Key]] = asyncio.get_running_loop().create_future()
        self._claims.append((entries, future))
        self._start_writer()
        return future

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """The single writer: everything that arrived during one INSERT goes in the next.
        Callbacks wait for their ids, so those go first; then the marks of finished work."""
        try:
            while self._claims or self._done:
                if self._claims:
                    batch, self._claims = self._claims[:BATCH], self._claims[BATCH:]
                    await self._settle(batch)
                else:
                    done, self._done = self._done[:BATCH], self._done[BATCH:]
                    await self._mark_handled(done)
        finally:
            self._writer = None

    async def _mark_handled(self, keys: list[Key]) -> None:
        """A dispatch that returned has done its work: the message is no longer waiting. (The
        commands mark it themselves in their own transaction, and this finds nothing left.)"""
        try:
            async with self.db.begin() as session:
                now = self.clock.now()
                for p, ids in _by_platform(keys).items():
                    await session.execute(_TAKE_MANY, {"p": p, "ids": ids, "now": now})
        except Exception:  # the sweep will find them: handled twice at worst, never lost
            log.exception("marking %d handled messages failed", len(keys))

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
            if not batch[0][1].done():
                batch[0][1].set_exception(e)  # its callback is answered with the failure
            return
        for entries, future in batch:
            # An id asked for by two callers in one batch belongs to the first.
            mine = {k for k, _ in entries if k in inserted}
            inserted -= mine
            if not future.done():
                future.set_result(mine)

    async def _insert(self, batch: list[Claim]) -> set[Key]:
        rows: dict[Key, tuple[Any, ...]] = {}
        # One stamp for the batch: the callbacks in it arrived within one write of each other,
        # and one value is converted for the database once (bot.bulk) instead of per row.
        seen_at = self.clock.now()
        for entries, _ in batch:
            for (p, e), msg in entries:
                if (p, e) not in rows:
                    rows[(p, e)] = (p, e, seen_at, inbound_record(msg), 0)
        found = await insert_new(
            self.db.engine, _SEEN, _CLAIMED, list(rows.values()), ("platform", "event_id")
        )
        self._seen_stats.wrote(len(found))
        return {(p, e) for p, e in found}

    def _start_workers(self) -> None:
        while self.waiting > len(self._running) and len(self._running) < self._workers:
            task = asyncio.create_task(self._work())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        if self.waiting >= self._limit:
            self._room.clear()

    async def _work(self) -> None:
        try:
            await self._work_through()
        finally:
            # Out of the running set before returning, not in a done callback a loop turn
            # later: a message queued in that turn would find "a worker running" and wait
            # for nobody.
            self._running.discard(asyncio.current_task())

    async def _work_through(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            if self.arriving() and (rest := self._gate.rest(loop.time())) > 0:
                await asyncio.sleep(rest)
                continue
            if not self._queue and self._overflow:
                try:
                    await self._reload()
                except Exception:  # kept: the next callback or sweep starts a worker again
                    log.exception("reading back %d stored messages failed", len(self._overflow))
                    return
            if not self._queue:
                return
            msgs = [self._queue.popleft() for _ in range(min(self._batch(), len(self._queue)))]
            if self.waiting < self._limit:
                self._room.set()
            started = loop.time()
            await self._run(msgs)
            took = loop.time() - started
            self._per_message = took / len(msgs)
            if self.arriving():
                self._gate.handled(loop.time(), took)

    def arriving(self) -> bool:
        """Callbacks are coming in (a burst)."""
        return asyncio.get_running_loop().time() - self._last_callback < BUSY_SECONDS

    def _batch(self) -> int:
        """How many messages to handle at once now."""
        if self.dispatch_many is None:
            return 1
        if not (self._shrink_batches and self.arriving() and self._per_message):
            return self._at_once
        return max(1, min(self._at_once, int(BUSY_HOLD / self._per_message)))

    async def _reload(self) -> None:
        """Read back the next stored messages that did not fit in memory, in arrival order."""
        keys = [self._overflow.popleft() for _ in range(min(RELOAD, len(self._overflow)))]
        found: dict[Key, Inbound] = {}
        try:
            async with self.db.begin() as session:
                for p, ids in _by_platform(keys).items():
                    rows = await session.execute(_WAITING, {"p": p, "ids": ids})
                    for e, body in rows:
                        if (msg := _decoded(p, e, body)) is not None:
                            found[(p, e)] = msg
        except Exception:
            self._overflow.extendleft(reversed(keys))  # tried again by the next worker
            raise
        for key in keys:
            if key not in found:  # handled meanwhile by another instance's sweep, or set aside
                self._mine.discard(key)
        # Ahead of whatever was queued while this read ran: those came later.
        self._queue.extendleft(reversed([found[k] for k in keys if k in found]))

    async def _run(self, msgs: list[Inbound]) -> None:
        try:
            if len(msgs) > 1 and self.dispatch_many is not None:
                await self.dispatch_many(msgs)
            else:
                await self.dispatch(msgs[0])
        except Exception:  # the boundary: one bad message must not take the others down
            # Left waiting: a sweep tries them again later (a database outage loses nothing).
            more = f" and the {len(msgs) - 1} after it" if len(msgs) > 1 else ""
            log.exception(
                "handling %s message %s%s failed", msgs[0].platform, msgs[0].event_id, more
            )
        else:
            if not self.dispatch_takes:
                self._done.extend(message_key(m) for m in msgs)
                self._start_writer()
        finally:
            self._mine.difference_update(message_key(m) for m in msgs)

    async def recover(self, older_than: timedelta = ORPHANED_AFTER) -> int:
        """Queue the messages accepted at least `older_than` ago and never handled, oldest
        first, except those this process holds already; how many were queued."""
        cutoff = self.clock.now() - older_than
        async with self.db.begin() as session:
            waiting = (
                await session.execute(
                    select(_SEEN.c.platform, _SEEN.c.event_id, _SEEN.c.body, _SEEN.c.attempts)
                    .where(_SEEN.c.handled_at.is_(None), _SEEN.c.seen_at <= cutoff)
                    .order_by(_SEEN.c.seen_at)
                    .limit(SWEEP_BATCH + len(self._mine))
                )
            ).all()
            queued: list[Inbound] = []
            for p, e, body, attempts in waiting:
                if (p, e) in self._mine or len(queued) >= SWEEP_BATCH:
                    continue
                params = {"p": p, "e": e, "was": attempts, "now": self.clock.now()}
                msg = _decoded(p, e, body)
                if msg is None or attempts >= MAX_ATTEMPTS:
                    if msg is not None:
                        log.error(
                            "%s message %s set aside unhandled after %d attempts",
                            p,
                            e,
                            attempts,
                        )
                    await session.execute(_SET_ASIDE, params)
                    continue
                # Counted before the work, so a message that kills the process is counted too;
                # and only one instance's sweep gets to count (and queue) it.
                if getattr(await session.execute(_RECOVER, params), "rowcount", 0) == 1:
                    queued.append(msg)
        for msg in queued:
            log.info(
                "%s message %s accepted earlier and not yet handled: handling it now",
                msg.platform,
                msg.event_id,
            )
            if self.metrics:
                self.metrics.count_inbound(msg.platform, "recovered")
            self._enqueue(msg)
        self._start_workers()
        return len(queued)

    async def sweep(self, every: float = SWEEP_SECONDS) -> None:
        """Recover orphaned messages until cancelled; a failed sweep is retried next time."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.recover()
            except Exception:
                log.exception("inbox sweep failed")

    async def close(self) -> None:
        """Stop after the messages being handled now; the rest stay stored for the next start
        (or another instance) instead of holding the shutdown up."""
        self._closed = True
        left = self.waiting
        self._queue.clear()
        self._overflow.clear()
        self._mine.clear()
        self._room.set()
        if left:
            log.info("%d accepted messages left for the next start", left)
        while self._running or self._writer is not None:
            await asyncio.gather(
                *self._running, *([self._writer] if self._writer else []), return_exceptions=True
            )
        await self._seen_stats.wait()

    async def drain(self) -> None:
        """Wait for the work in flight: on shutdown, and in tests instead of sleeping."""
        while self._running or self._writer is not None or self._accepting:
            pending = [*self._running, *([self._writer] if self._writer else [])]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            else:  # a caller's ids are claimed; it queues its work on its next step
                await asyncio.sleep(0)
        await self._seen_stats.wait()


def _decoded(platform: str, event_id: str, body: Any) -> Inbound | None:
    if body is None:
        return None
    try:
        return inbound_from_record(body)
    except (KeyError, ValueError, TypeError):
        log.error("%s message %s was stored unreadably and is set aside", platform, event_id)
        return None
