"""The delivery worker: claim → send → record, for every lane, within every robot's limit.

One claim is a short transaction: pick each lane's head (a lane is one chat; its messages go
out strictly in queue order), coalesce what may join it, charge the robot's rolling window,
mark it ``sending`` and commit. The HTTP send runs with no transaction open. A second short
transaction records the outcome: sent; retry later with exponential backoff and jitter,
keeping the parts already shown so the resend skips them; or dead, with one alert per
channel per hour in the admins' group. Lanes are served round-robin, so a burst to one group
never delays the others.

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
import itertools
import logging
import os
import random
import socket
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
from bot.delivery.coalesce import how_many_fit, merge
from bot.delivery.lanes import Heads
from bot.delivery.limits import RollingLimiter, part_budget, requests_for
from bot.delivery.outcomes import Backoff, Batch, Recorder
from bot.delivery.resolve import Unroutable, resolve
from bot.delivery.status import depth
from bot.deployment import Loaded
from bot.messages import Outbound
from bot.metrics import Metrics
from bot.models import OutboxMessage
from bot.outbox import message_from_json
from bot.senders import Senders

log = logging.getLogger(__name__)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Pass:
    """What one claim learnt about when to look again."""

    wake_at: list[datetime] = field(default_factory=list)


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
        self.recorder = Recorder(
            db, deployment, metrics, self.instance, rng or random.Random(), backoff or Backoff()
        )
        self._served: dict[tuple[str, str], int] = {}  # lane → when last served
        self._turn = itertools.count()
        self._heads = Heads()  # looked up, not yet tried
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
            ids = await claims.release(session, lambda row: self._abandoned(row, now, True))
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

        A send cut off here stays ``sending`` and is sent again after the restart.
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

    def _abandoned(self, row: OutboxMessage, now: datetime, starting: bool) -> bool:
        if row.claimed_at is None or row.claimed_at <= now - self.lease:
            return True
        if not starting or row.claimed_by is None:
            return False
        if row.claimed_by == self.instance:
            return True
        host, _, pid = row.claimed_by.rpartition(":")
        return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))

    async def _claim(self, limit: int) -> list[Batch]:
        await self.recorder.retry_unrecorded()
        now = self.clock.now()
        found = _Pass()
        batches: list[Batch] = []
        async with self.db.begin() as session:
            released = await claims.release(
                session,
                lambda row: row.claimed_by != self.instance and self._abandoned(row, now, False),
            )
            if released:
                log.warning("outbox: claims past their lease released: %s", released)
            looked: set[int] = set()
            while len(batches) < limit:
                if not self._heads:
                    # A head found dead uncovers the next row of its lane: look again.
                    heads = [h for h in await claims.lane_heads(session, now) if h.id not in looked]
                    if not heads:
                        break
                    self._heads.remember(heads, lambda lane: self._served.get(lane, -1))
                ready = await self._heads.next(session, limit)
                for i, head in enumerate(ready):
                    if head.id in looked:
                        continue
                    looked.add(head.id)
                    batch = await self._claim_lane(session, head, now, found)
                    if batch is not None:
                        batches.append(batch)
                        if len(batches) == limit:
                            self._heads.put_back(ready[i + 1 :])
                            break
            if (retry := await claims.next_retry(session, now)) is not None:
                found.wake_at.append(retry)
        self._wake_at = min(found.wake_at, default=None)
        return batches

    async def _claim_lane(
        self, session: AsyncSession, head: OutboxMessage, now: datetime, found: _Pass
    ) -> Batch | None:
        locked = await claims.lock_head(session, head, now)
        if locked is None:
            return None  # another instance has it
        head = locked
        try:
            route = resolve(head, self.deployment, now)
            message = message_from_json(head.body)
        except (Unroutable, ValueError) as exc:
            await self.recorder.unroutable(session, head, str(exc), now)
            return None
        joined = _readable(await claims.bound_followers(session, head.id))
        if not joined and head.mergeable and head.attempts == 0 and head.sent_parts == 0:
            joined = _readable(await claims.candidates(session, head, now))
            budget = part_budget(route.destination.channel_type, message.format)
            joined = joined[: how_many_fit(message, [m for _, m in joined], budget)]
        post = merge([message, *(m for _, m in joined)])
        cost = 0
        if route.rate_key is not None:
            # Once an attempt has failed part-way, the sender has said how many parts there are.
            total = self._parts.get(head.id) or requests_for(post, route.destination.channel_type)
            cost = total - head.sent_parts
            if not self.limiter.take(route.rate_key, route.rate_limit, cost, now):
                found.wake_at.append(
                    self.limiter.free_at(route.rate_key, route.rate_limit, cost, now)
                )
                return None
        followers = tuple(row for row, _ in joined)
        if not await claims.mark_claimed(session, head, followers, instance=self.instance, now=now):
            if route.rate_key is not None:  # someone else sends it, and pays for it
                self.limiter.refund(route.rate_key, route.rate_limit, cost, now)
            return None
        self._served[(head.platform, head.chat_id)] = next(self._turn)
        if route.rate_key is not None:
            self._charged[head.id] = (cost, now)
        return Batch(head, followers, post, route)

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


def _readable(rows: list[OutboxMessage]) -> list[tuple[OutboxMessage, Outbound]]:
    """Rows with their stored messages; stops at one that cannot be read (it goes alone)."""
    out = []
    for row in rows:
        try:
            out.append((row, message_from_json(row.body)))
        except ValueError:
            break
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
