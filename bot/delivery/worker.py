"""The delivery worker: claim → send → record, for every lane, within every robot's limit.

One claim is a short transaction for up to ``concurrency`` lanes at once: pick the lanes'
heads (a lane is one chat; its messages go out strictly in queue order), coalesce what may
join each, charge each robot's rolling window, mark them ``sending`` and commit. The HTTP
sends run with no transaction open. Another short transaction records the outcomes of the
sends that ended meanwhile: sent; retry later with exponential backoff and jitter, keeping
the parts already shown so the resend skips them; or dead, with one alert per channel per
hour in the admins' group. Lanes are served in turn, so a burst to one group never delays
the others. What one message costs does not grow with the number of lanes queued
(bot/delivery/claims.py, lanes.py).

Crash safety. A claimed row stays ``sending`` until its outcome is written. On start, the rows
this process's predecessor left in flight (same instance id, or a process on this host that no
longer exists) go back to the queue, as do rows whose claim is older than the lease, whoever
held them. So after a SIGKILL at any moment every queued message is delivered, and the only
messages that may be shown twice are those whose request was in flight at the kill: at most
one per lane, ``concurrency`` (8) in all, and only if the platform had accepted the request
before the process died. A send that times out is the same window in small: the platform may
have shown the part it did not answer for, and it is sent again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import DeliveryError
from bot.adapters.outbound import PartDeliveryError
from bot.clock import Clock
from bot.db import Database
from bot.delivery import claims
from bot.delivery.coalesce import how_many_fit, merge, readable
from bot.delivery.lanes import Heads
from bot.delivery.limits import RollingLimiter, part_budget, requests_for
from bot.delivery.outcomes import Backoff, Batch, Recorder
from bot.delivery.recovery import default_instance, left_behind
from bot.delivery.resolve import Resolver, Unroutable
from bot.delivery.status import depth
from bot.deployment import Loaded
from bot.metrics import Metrics
from bot.models import OutboxMessage
from bot.outbox import message_from_json
from bot.senders import Senders

log = logging.getLogger(__name__)


RELEASE_EVERY = timedelta(seconds=30)


@dataclass
class _Pass:
    """What one claim pass learnt: when to look again, and whether a head it found dead
    uncovered the next row of its lane."""

    wake_at: list[datetime] = field(default_factory=list)
    uncovered: bool = False


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        senders: Senders,
        deployment: Loaded,
        clock: Clock,
        *,
        metrics: Metrics,
        rng: random.Random | None = None,
        concurrency: int = 8,
        instance: str | None = None,
        lease: timedelta = timedelta(seconds=120),
        backoff: Backoff | None = None,
        idle_seconds: float = 2.0,
    ) -> None:
        self.db, self.senders, self.deployment, self.clock = db, senders, deployment, clock
        self.metrics = metrics
        self.instance = instance or default_instance()
        self.concurrency, self.lease, self.idle_seconds = concurrency, lease, idle_seconds
        self.limiter = RollingLimiter()
        self.resolver = Resolver(deployment)
        self.recorder = Recorder(
            db, deployment, metrics, self.instance, rng or random.Random(), backoff or Backoff()
        )
        self._heads = Heads()  # looked up, not yet tried
        self._released_at: datetime | None = None  # when claims past the lease were last sought
        self._charged: dict[int, tuple[int, datetime]] = {}  # head id → (cost, when) in flight
        self._parts: dict[int, int] = {}  # head id → its parts, as the sender counted them
        self._wake = asyncio.Event()
        self._wake_at: datetime | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[int]] = set()
        self._runner: asyncio.Task[None] | None = None
        metrics.on_scrape(self._refresh_depth)

    def nudge(self) -> None:
        """Something was queued (after its transaction committed): look now."""
        self._wake.set()

    def resume(self) -> None:
        """Allow ``run()`` again after ``stop()``: this instance leads once more."""
        self._stopping = False

    async def recover(self) -> int:
        """Put back in the queue what a stopped process left in flight (see the docstring)."""
        now = self.clock.now()
        async with self.db.begin() as session:
            ids = await claims.release(
                session,
                lambda row: left_behind(row, now=now, lease=self.lease, instance=self.instance),
            )
        if ids:
            log.warning(
                "outbox: %d message(s) in flight when the last process stopped are queued "
                "again and may be shown twice: %s",
                len(ids),
                ", ".join(f"#{i}" for i in ids),
            )
        return len(ids)

    async def flush(self) -> int:
        """Send everything sendable now, pass after pass, until nothing more is; the number
        of messages delivered. The deterministic step for tests and one-shot runs."""
        delivered = 0
        while batches := await self._claim(self.concurrency):
            delivered += sum(await asyncio.gather(*(self._deliver(b) for b in batches)))
        return delivered

    async def run(self) -> None:
        """Deliver until ``stop()``: a task owned by the app's lifespan."""
        self._runner = asyncio.current_task()
        try:
            await self.recover()
        except Exception:
            log.exception("outbox: recovery on start failed; rows in flight wait for the lease")
        while not self._stopping:
            self._wake.clear()
            batches = []
            free = self.concurrency - len(self._inflight)
            # A claim is a transaction: with thousands of lanes queued, one per finished send
            # would cost more than the sends. Claim when half the slots are free.
            if free > 0 and (free >= (self.concurrency + 1) // 2 or not self._inflight):
                try:
                    batches = await self._claim(free)
                except Exception:  # the database is away: try again after a pause
                    log.warning("outbox: claiming failed", exc_info=True)
                    self._wake_at = None
            for batch in batches:
                task = asyncio.create_task(self._deliver(batch))
                self._inflight.add(task)
                task.add_done_callback(self._sent)
            if not batches and not self._stopping:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._wait_seconds())

    async def stop(self, grace: float) -> None:
        """Stop claiming, give the sends in flight ``grace`` seconds, leave the rest queued.

        A send cut off here stays ``sending`` and is sent again after the restart; one that
        ended has its outcome written first.
        """
        self._stopping = True
        self._wake.set()
        if self._inflight:
            _, cut = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in cut:
                task.cancel()
            if cut:
                log.warning("outbox: %d send(s) cut off by the shutdown", len(cut))
                await asyncio.gather(*cut, return_exceptions=True)
        with suppress(TimeoutError):
            await asyncio.wait_for(self.recorder.idle(), grace)
        if self._runner is not None and self._runner is not asyncio.current_task():
            with suppress(asyncio.CancelledError):
                await self._runner

    def _sent(self, task: asyncio.Task[int]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox: a send failed unexpectedly", exc_info=task.exception())
        self._wake.set()

    def _wait_seconds(self) -> float:
        if self._wake_at is None:
            return self.idle_seconds
        ahead = (self._wake_at - self.clock.now()).total_seconds()
        return min(self.idle_seconds, max(0.01, ahead))

    async def _claim(self, limit: int) -> list[Batch]:
        """One pass: up to ``limit`` lanes' heads claimed, in one short transaction of a few
        statements (a look when the remembered heads are used up, a lock and a claim per
        batch of heads)."""
        await self.recorder.retry_unrecorded()
        now = self.clock.now()
        found = _Pass()
        batches: list[Batch] = []
        async with self.db.begin() as session:
            await self._release_expired(session, now)
            tried: set[int] = set()
            may_look = True
            while len(batches) < limit:
                if not self._heads:
                    # Looking again in this pass finds only what the look left out (it was
                    # full) or the row behind a head found dead meanwhile.
                    if not (may_look or found.uncovered):
                        break
                    may_look, found.uncovered = await self._heads.look(session, now, tried), False
                    if not self._heads:
                        break
                heads = self._heads.take(limit - len(batches))
                tried.update(heads)
                batches += await self._claim_heads(session, heads, now, found)
            if not batches and (retry := await claims.next_retry(session, now)) is not None:
                found.wake_at.append(retry)
        self._wake_at = min(found.wake_at, default=None)
        return batches

    async def _release_expired(self, session: AsyncSession, now: datetime) -> None:
        """Other instances' claims past the lease go back to the queue. Looked for every
        ``RELEASE_EVERY``, not every pass: a lease of minutes does not need it more often."""
        since = None if self._released_at is None else now - self._released_at
        if since is not None and timedelta(0) <= since < RELEASE_EVERY:
            return
        self._released_at = now
        released = await claims.release_expired(
            session, instance=self.instance, before=now - self.lease
        )
        if released:
            log.warning("outbox: claims past their lease released: %s", released)

    async def _claim_heads(
        self, session: AsyncSession, ids: list[int], now: datetime, found: _Pass
    ) -> list[Batch]:
        heads = await claims.lock(session, ids, now)  # gone, taken or overtaken: left out
        bound = await claims.bound_followers(session, [h.id for h in heads if h.mergeable])
        ready: list[tuple[Batch, int]] = []
        for head in heads:
            prepared = await self._prepare(session, head, bound.get(head.id, []), now, found)
            if prepared is not None:
                ready.append(prepared)
        taken = await claims.claim(
            session, [b.head.id for b, _ in ready], instance=self.instance, now=now
        )
        batches = []
        for batch, cost in ready:
            key, limit = batch.route.rate_key, batch.route.rate_limit
            if batch.head.id not in taken:
                if key is not None:  # someone else sends it, and pays for it
                    self.limiter.refund(key, limit, cost, now)
                continue
            if batch.followers:
                await claims.merge(session, batch.head.id, [r.id for r in batch.followers])
            if key is not None:
                self._charged[batch.head.id] = (cost, now)
            batches.append(batch)
        return batches

    async def _prepare(
        self,
        session: AsyncSession,
        head: OutboxMessage,
        bound: list[OutboxMessage],
        now: datetime,
        found: _Pass,
    ) -> tuple[Batch, int] | None:
        """The post ``head`` carries, charged to its robot's window; None when it cannot go
        now (dead: it leads nowhere; parked: the window is full). Its cost rides along."""
        try:
            route = self.resolver.resolve(head, now)
            message = message_from_json(head.body)
        except (Unroutable, ValueError) as exc:
            await self.recorder.unroutable(session, head, str(exc), now)
            found.uncovered = True
            return None
        joined = readable(bound)
        if not joined and head.mergeable and head.attempts == 0 and head.sent_parts == 0:
            joined = readable(await claims.candidates(session, head, now))
            budget = part_budget(route.destination.channel_type, message.format)
            joined = joined[: how_many_fit(message, [m for _, m in joined], budget)]
        post = merge([message, *(m for _, m in joined)])
        cost = 0
        if route.rate_key is not None:
            # Once an attempt has failed part-way, the sender has said how many parts there are.
            total = self._parts.get(head.id) or requests_for(post, route.destination.channel_type)
            cost = total - head.sent_parts
            if not self.limiter.take(route.rate_key, route.rate_limit, cost, now):
                free = self.limiter.free_at(route.rate_key, route.rate_limit, cost, now)
                await claims.park(session, head.id, free)
                found.wake_at.append(free)
                return None
        return Batch(head, tuple(row for row, _ in joined), post, route), cost

    async def _deliver(self, batch: Batch) -> int:
        started = time.perf_counter()
        error: DeliveryError | None = None
        try:
            await self.senders.send(
                batch.route.destination, batch.post, skip_parts=batch.head.sent_parts
            )
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a sender bug must not stop the worker: retry later
            log.exception("outbox #%d: sender raised %s", batch.head.id, type(exc).__name__)
            error = DeliveryError(
                f"unexpected {type(exc).__name__} in the sender", retryable=True, code="internal"
            )
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.send_seconds.labels(platform=batch.route.destination.platform).observe(
                elapsed
            )
            made = None  # requests really made: known when a part failed
            self._parts.pop(batch.head.id, None)
            if isinstance(error, PartDeliveryError):
                made = error.sent_parts - batch.head.sent_parts + 1 if error.total_parts else 0
                if error.total_parts:
                    self._parts[batch.head.id] = error.total_parts
            charged, key = self._charged.pop(batch.head.id, None), batch.route.rate_key
            if charged is not None and key is not None:
                cost, at = charged
                route = batch.route
                self.limiter.settle(key, route.rate_limit, cost, at, self.clock.now(), made)
        return await self.recorder.record(batch, error, self.clock.now())

    async def _refresh_depth(self) -> None:
        async with self.db.begin() as session:
            counts = await depth(session)
        self.metrics.set_depth(counts)
