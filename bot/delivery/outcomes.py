"""How a send ended, written down: sent, retry later (backoff with jitter), or dead.

Each outcome is one short transaction. If the database cannot take it (it is away for a
moment), the outcome is kept in memory and written before the next claim: the row stays
``sending`` meanwhile, which holds its lane, so nothing overtakes it and it is not sent again.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import DeliveryError
from bot.db import Database
from bot.delivery import claims
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
        self._unrecorded: list[tuple[Batch, DeliveryError | None, datetime]] = []

    async def record(self, batch: Batch, error: DeliveryError | None, now: datetime) -> int:
        """Write the outcome; the number of messages it delivered."""
        try:
            async with self.db.begin() as session:
                return await self._write(session, batch, error, now)
        except Exception:
            log.warning("outbox #%d: outcome not recorded yet", batch.head.id, exc_info=True)
            self._unrecorded.append((batch, error, now))
            return 0

    async def retry_unrecorded(self) -> None:
        waiting, self._unrecorded = self._unrecorded, []
        for batch, error, now in waiting:
            await self.record(batch, error, now)

    async def unroutable(
        self, session: AsyncSession, head: OutboxMessage, reason: str, now: datetime
    ) -> None:
        """A row that cannot be sent anywhere: dead at once, without a claim."""
        done = await claims.mark_dead(
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

    async def _write(
        self, session: AsyncSession, batch: Batch, error: DeliveryError | None, now: datetime
    ) -> int:
        head, channel = batch.head, batch.head.channel
        if error is None:
            if not await claims.mark_sent(session, head.id, instance=self.instance, now=now):
                return self._lost(head)
            self.metrics.sent.labels(channel=channel).inc(batch.size)
            merged = f" with {batch.size - 1} coalesced" if batch.followers else ""
            log.info("outbox #%d → %s sent%s", head.id, channel, merged)
            return batch.size
        attempts = head.attempts + 1
        sent_parts = max(head.sent_parts, error.sent_parts)
        if error.retryable or self._reroutable(batch, sent_parts):
            rerouted = not error.retryable
            at = now if rerouted else now + self.backoff.delay(attempts, self.rng)
            route = {**(head.route or {}), "url": ""} if rerouted else None
            if not await claims.mark_retry(
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
        if not await claims.mark_dead(
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
