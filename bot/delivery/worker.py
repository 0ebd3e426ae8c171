"""The delivery worker: claim → send → record, for every lane, within every robot's limit.

Each pass claims up to ``concurrency`` lanes' heads in one short transaction, each charged to
its robot's rolling window (claimer.py). The HTTP sends run with no transaction
open. Another short transaction records the outcomes of the sends that ended meanwhile: sent;
retry later with exponential backoff and jitter, keeping the parts already shown so the resend
skips them; or dead, with one alert per channel per hour in the admins' group. Lanes are
served in turn, so a burst to one group never delays the others.

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
import math
import random
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta

from bot.adapters.base import DeliveryError
from bot.clock import Clock
from bot.db import Database
from bot.delivery import claims
from bot.delivery.claimer import Claimer
from bot.delivery.limits import RollingLimiter
from bot.delivery.outcomes import Backoff, Batch, Recorder
from bot.delivery.recovery import default_instance, left_behind
from bot.delivery.status import depth
from bot.deployment import Loaded
from bot.metrics import Metrics
from bot.senders import Senders

log = logging.getLogger(__name__)
# While callbacks arrive, a pass (up to `concurrency` sends) at most this often: delivery's
# transactions would otherwise take SQLite's one connection from the callbacks' INSERTs, as
# handling's would if the inbox did not hold it to a share of the loop.
BUSY_PAUSE = 0.1


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
        busy: Callable[[], bool] = lambda: False,
        busy_pause: float = BUSY_PAUSE,
    ) -> None:
        self.db, self.senders, self.deployment, self.clock = db, senders, deployment, clock
        self.metrics = metrics
        self.instance = instance or default_instance()
        self.concurrency, self.lease, self.idle_seconds = concurrency, lease, idle_seconds
        # Callbacks arriving (the app passes its inbox's): their answers go first.
        self.busy, self.busy_pause = busy, busy_pause
        self._last_pass = -math.inf
        self.recorder = Recorder(
            db, deployment, metrics, self.instance, rng or random.Random(), backoff or Backoff()
        )
        self.claimer = Claimer(db, deployment, self.recorder, instance=self.instance, lease=lease)
        self._wake = asyncio.Event()
        self._wake_at: datetime | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[int]] = set()
        self._runner: asyncio.Task[None] | None = None
        metrics.on_scrape(self._refresh_depth)

    @property
    def limiter(self) -> RollingLimiter:
        """The robots' rolling windows (a benchmark sets its own)."""
        return self.claimer.limiter

    @limiter.setter
    def limiter(self, limiter: RollingLimiter) -> None:
        self.claimer.limiter = limiter

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
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if self.busy():  # passes at least busy_pause apart while callbacks arrive
                await asyncio.sleep(self._last_pass + self.busy_pause - loop.time())
            self._last_pass = loop.time()
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
        await self.recorder.retry_unrecorded()
        batches, self._wake_at = await self.claimer.claim(limit, self.clock.now())
        return batches

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
            self.claimer.settle(batch, error, self.clock.now())
        return await self.recorder.record(batch, error, self.clock.now())

    async def _refresh_depth(self) -> None:
        async with self.db.begin() as session:
            counts = await depth(session)
        self.metrics.set_depth(counts)
