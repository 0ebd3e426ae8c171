"""One claim pass: which lanes' heads go now, what joins each, and what each costs its robot.

A pass serves up to ``limit`` lanes at once: pick the lanes' heads (a lane is one chat; its
messages go out strictly in queue order), then, in one short transaction, coalesce what may
join each, charge each robot's rolling window, mark them ``sending`` and commit. A head that
cannot go now is dead (it leads nowhere) or parked until its robot's window frees. What one
message costs does not grow with the number of lanes queued (claims.py, lanes.py). The
charge is settled once the send ends, with the requests it really made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import DeliveryError
from bot.adapters.outbound import PartDeliveryError
from bot.db import Database
from bot.delivery import claims
from bot.delivery.coalesce import how_many_fit, merge, readable
from bot.delivery.lanes import Heads
from bot.delivery.limits import RollingLimiter, part_budget, requests_for
from bot.delivery.outcomes import Batch, Recorder
from bot.delivery.resolve import Resolver, Unroutable
from bot.deployment import Loaded
from bot.models import OutboxMessage
from bot.outbox import message_from_json

log = logging.getLogger(__name__)

RELEASE_EVERY = timedelta(seconds=30)


@dataclass
class _Pass:
    """What one claim pass learnt: when to look again, and whether the look may have missed
    heads: one found dead uncovered the next row of its lane, or another claimer took some."""

    wake_at: list[datetime] = field(default_factory=list)
    look_again: bool = False


class Claimer:
    def __init__(
        self,
        db: Database,
        deployment: Loaded,
        recorder: Recorder,
        *,
        instance: str,
        lease: timedelta,
    ) -> None:
        self.db, self.recorder, self.instance, self.lease = db, recorder, instance, lease
        self.limiter = RollingLimiter()
        self.resolver = Resolver(deployment)
        self._heads = Heads()  # looked up, not yet tried
        self._released_at: datetime | None = None  # when claims past the lease were last sought
        self._charged: dict[int, tuple[int, datetime]] = {}  # head id → (cost, when) in flight
        self._parts: dict[int, int] = {}  # head id → its parts, as the sender counted them

    async def claim(self, limit: int, now: datetime) -> tuple[list[Batch], datetime | None]:
        """One pass: up to ``limit`` lanes' heads claimed, and when something not claimed now
        may go. The look (when the remembered heads are used up) only reads, and reads beside
        the writer (Database.reading): over a long queue it is the slowest statement here.
        Each batch of heads is then locked and claimed in a short transaction of its own."""
        found = _Pass()
        batches: list[Batch] = []
        await self._release_expired(now)
        tried: set[int] = set()
        may_look = True
        while len(batches) < limit:
            if not self._heads:
                # Looking again in this pass finds only what the look left out (it was full),
                # the row behind a head found dead meanwhile, or what another claimer's
                # claims have brought to the front.
                if not (may_look or found.look_again):
                    break
                async with self.db.reading() as reader:
                    may_look, found.look_again = await self._heads.look(reader, now, tried), False
                if not self._heads:
                    break
            heads = self._heads.take(limit - len(batches))
            tried.update(heads)
            charged: list[tuple[Batch, int]] = []
            try:
                async with self.db.begin() as session:
                    claimed = await self._claim_heads(session, heads, now, found, charged)
            except Exception:
                for batch, cost in charged:  # rolled back: nothing of it goes out
                    self._refund(batch, cost, now)
                if not batches:
                    raise
                # Those claimed already are committed: sent now, the rest is tried next pass.
                log.warning("outbox: claiming failed part-way", exc_info=True)
                break
            # Committed: the claimed ones keep their charge until their send settles it.
            for batch, cost in charged:
                if batch.head.id not in claimed:
                    self._refund(batch, cost, now)  # another claimer took it, and pays for it
                    continue
                if batch.route.rate_key is not None:
                    self._charged[batch.head.id] = (cost, now)
                batches.append(batch)
        if not batches:
            async with self.db.reading() as reader:
                if (retry := await claims.next_retry(reader, now)) is not None:
                    found.wake_at.append(retry)
        return batches, min(found.wake_at, default=None)

    def settle(self, batch: Batch, error: DeliveryError | None, now: datetime) -> None:
        """The send ended: its robot's window keeps the requests really made."""
        made = None  # requests really made: known when a part failed
        self._parts.pop(batch.head.id, None)
        if isinstance(error, PartDeliveryError):
            made = error.sent_parts - batch.head.sent_parts + 1 if error.total_parts else 0
            if error.total_parts:
                self._parts[batch.head.id] = error.total_parts
        charged, key = self._charged.pop(batch.head.id, None), batch.route.rate_key
        if charged is not None and key is not None:
            cost, at = charged
            self.limiter.settle(key, batch.route.rate_limit, cost, at, now, made)

    async def _release_expired(self, now: datetime) -> None:
        """Other instances' claims past the lease go back to the queue. Looked for every
        ``RELEASE_EVERY``, not every pass: a lease of minutes does not need it more often."""
        since = None if self._released_at is None else now - self._released_at
        if since is not None and timedelta(0) <= since < RELEASE_EVERY:
            return
        async with self.db.begin() as session:
            released = await claims.release_expired(
                session, instance=self.instance, before=now - self.lease
            )
        self._released_at = now
        if released:
            log.warning("outbox: claims past their lease released: %s", released)

    async def _claim_heads(
        self,
        session: AsyncSession,
        ids: list[int],
        now: datetime,
        found: _Pass,
        charged: list[tuple[Batch, int]],
    ) -> set[int]:
        """Claim what of ``ids`` can go now, in ``session``; the ids claimed. Every head charged
        to its robot's window is added to ``charged`` as it is, so that a caller whose
        transaction fails can give every charge back."""
        heads = await claims.lock(session, ids, now)  # gone, taken or overtaken: left out
        if len(heads) < len(ids):  # the look is out of date: another claimer moved meanwhile
            found.look_again = True
        bound = await claims.bound_followers(session, [h.id for h in heads if h.mergeable])
        for head in heads:
            prepared = await self._prepare(session, head, bound.get(head.id, []), now, found)
            if prepared is not None:
                charged.append(prepared)
        taken = await claims.claim(
            session, [b.head.id for b, _ in charged], instance=self.instance, now=now
        )
        for batch, _ in charged:
            if batch.head.id in taken and batch.followers:
                await claims.merge(session, batch.head.id, [r.id for r in batch.followers])
        return taken

    def _refund(self, batch: Batch, cost: int, now: datetime) -> None:
        if batch.route.rate_key is not None:
            self.limiter.refund(batch.route.rate_key, batch.route.rate_limit, cost, now)

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
            found.look_again = True
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
