"""How a send ended, written down: sent, retry later (backoff with jitter), or dead.

Outcomes are written by one writer: the sends that end while a write is in progress are
written together in the next, in one short transaction, the posts sent in one statement (at
the province's volumes a transaction per message cost more than the sends). Each send waits
for its own outcome to be committed. If the database cannot take it (it is away for a
moment), the outcome is kept in memory and written before the next claim: the row stays
``sending`` meanwhile, which holds its lane, so nothing overtakes it and it is not sent again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import DeliveryError
from bot.db import Database
from bot.delivery import records
from bot.delivery.alerts import alert_dead
from bot.delivery.resolve import ROUTE_CHANNELS, Route
from bot.deployment import Loaded
from bot.messages import Outbound
from bot.metrics import Metrics
from bot.models import OutboxMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``min(cap, base·2^attempts)`` seconds, plus up to ``jitter`` of that at random, so
    that robots refused together do not come back together."""

    base: float = 2.0
    cap: float = 300.0
    jitter: float = 0.25

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        seconds = min(self.cap, self.base * 2**attempts)
        return timedelta(seconds=seconds + rng.uniform(0, seconds * self.jitter))


@dataclass(frozen=True, slots=True)
class Batch:
    """One claimed post: the lane's head, the rows coalesced into it, what goes out, where."""

    head: OutboxMessage
    followers: tuple[OutboxMessage, ...]
    post: Outbound
    route: Route

    @property
    def size(self) -> int:
        return 1 + len(self.followers)


_Outcome = tuple[Batch, DeliveryError | None, datetime]  # a send's end, and when it ended


class Recorder:
    def __init__(
        self,
        db: Database,
        deployment: Loaded,
        metrics: Metrics,
        instance: str,
        rng: random.Random,
        backoff: Backoff,
    ) -> None:
        self.db, self.deployment, self.metrics = db, deployment, metrics
        self.instance, self.rng, self.backoff = instance, rng, backoff
        self._unrecorded: list[_Outcome] = []
        self._waiting: list[tuple[_Outcome, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, batch: Batch, error: DeliveryError | None, now: datetime) -> int:
        """Write the outcome; the number of messages it delivered (0 until it is written)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(((batch, error, now), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        # A send cut off by the shutdown leaves its outcome to the writer, which writes it.
        return await asyncio.shield(done)

    async def idle(self) -> None:
        """Wait until every outcome handed over has been written (or kept for later)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})

    async def retry_unrecorded(self) -> None:
        if self._unrecorded:
            waiting, self._unrecorded = self._unrecorded, []
            await self._write_all(waiting)

    async def unroutable(
        self, session: AsyncSession, head: OutboxMessage, reason: str, now: datetime
    ) -> None:
        """A row that cannot be sent anywhere: dead at once, without a claim."""
        done = await records.mark_dead(
            session,
            head.id,
            instance=None,
            attempts=head.attempts,
            sent_parts=head.sent_parts,
            error=reason,
        )
        if done:
            log.error("outbox #%d → %s dead: %s", head.id, head.channel, reason)
            self.metrics.dead.labels(channel=head.channel).inc()
            await alert_dead(
                session,
                head,
                code="unroutable",
                error=reason,
                deployment=self.deployment,
                now=now,
            )

    async def _write_waiting(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            counts = await self._write_all([outcome for outcome, _ in waiting])
            for (_, done), count in zip(waiting, counts, strict=True):
                if not done.done():
                    done.set_result(count)

    async def _write_all(self, outcomes: list[_Outcome]) -> list[int]:
        try:
            async with self.db.begin() as session:
                return await self._write(session, outcomes)
        except Exception:
            ids = ", ".join(f"#{batch.head.id}" for batch, _, _ in outcomes)
            log.warning("outbox %s: outcome not recorded yet", ids, exc_info=True)
            self._unrecorded.extend(outcomes)
            return [0] * len(outcomes)

    async def _write(self, session: AsyncSession, outcomes: list[_Outcome]) -> list[int]:
        sent = {batch.head.id: now for batch, error, now in outcomes if error is None}
        coalesced = {batch.head.id for batch, error, _ in outcomes if not error and batch.followers}
        done = await records.mark_sent(session, sent, instance=self.instance, coalesced=coalesced)
        counts = []
        for batch, error, now in outcomes:
            if error is not None:
                counts.append(await self._failed(session, batch, error, now))
                continue
            head, channel = batch.head, batch.head.channel
            if head.id not in done:
                counts.append(self._lost(head))
                continue
            self.metrics.sent.labels(channel=channel).inc(batch.size)
            merged = f" with {batch.size - 1} coalesced" if batch.followers else ""
            log.info("outbox #%d → %s sent%s", head.id, channel, merged)
            counts.append(batch.size)
        return counts

    async def _failed(
        self, session: AsyncSession, batch: Batch, error: DeliveryError, now: datetime
    ) -> int:
        head, channel = batch.head, batch.head.channel
        attempts = head.attempts + 1
        sent_parts = max(head.sent_parts, error.sent_parts)
        if error.retryable or self._reroutable(batch, sent_parts):
            rerouted = not error.retryable
            at = now if rerouted else now + self.backoff.delay(attempts, self.rng)
            route = {**(head.route or {}), "url": ""} if rerouted else None
            if not await records.mark_retry(
                session,
                head.id,
                instance=self.instance,
                attempts=attempts,
                at=at,
                sent_parts=sent_parts,
                error=str(error),
                route=route,
            ):
                return self._lost(head)
            self.metrics.retried.labels(channel=channel).inc()
            if rerouted:
                log.warning(
                    "outbox #%d → %s: reply route refused (%s), rerouting", head.id, channel, error
                )
            else:
                wait = (at - now).total_seconds()
                log.warning(
                    "outbox #%d → %s: attempt %d failed, retry in %.0f s: %s",
                    head.id,
                    channel,
                    attempts,
                    wait,
                    error,
                )
            return 0
        if not await records.mark_dead(
            session,
            head.id,
            instance=self.instance,
            attempts=attempts,
            sent_parts=sent_parts,
            error=str(error),
        ):
            return self._lost(head)
        self.metrics.dead.labels(channel=channel).inc(batch.size)
        log.error("outbox #%d → %s dead after %d attempt(s): %s", head.id, channel, attempts, error)
        await alert_dead(
            session, head, code=error.code, error=str(error), deployment=self.deployment, now=now
        )
        return 0

    @staticmethod
    def _reroutable(batch: Batch, sent_parts: int) -> bool:
        """A reply route refused before anything went out: try the route's fallback."""
        used = batch.route.destination
        return used.channel_type in ROUTE_CHANNELS and bool(used.url) and sent_parts == 0

    @staticmethod
    def _lost(head: OutboxMessage) -> int:
        log.warning("outbox #%d: claim lost to another instance; outcome dropped", head.id)
        return 0
