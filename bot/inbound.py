"""Accepting inbound messages: drop the ones already seen, hand the rest on after the 200.

Platforms re-deliver callbacks that are slow to answer (WeCom after 5 s, three times), so the
route only records the message id and schedules the work; the id is unique in the database,
which makes a retry, a Stream redelivery or a second instance drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from bot.clock import Clock
from bot.db import Database, claim
from bot.messages import Inbound
from bot.metrics import Metrics
from bot.models import InboundSeen

log = logging.getLogger(__name__)
Dispatch = Callable[[Inbound], Awaitable[None]]


class Inbox:
    def __init__(
        self, db: Database, clock: Clock, dispatch: Dispatch, metrics: Metrics | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.dispatch = dispatch
        self.metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    async def accept(self, messages: Iterable[Inbound]) -> list[Inbound]:
        """Record the ids; return the messages not seen before, whose work is now scheduled."""
        fresh = []
        for msg in messages:
            async with self.db.begin() as session:
                row = {
                    "platform": msg.platform,
                    "event_id": msg.event_id[:191],
                    "seen_at": self.clock.now(),
                }
                claimed = await claim(session, InboundSeen, row)
            if self.metrics:
                self.metrics.count_inbound(msg.platform, "accepted" if claimed else "duplicate")
            if not claimed:
                log.info("duplicate %s message %s dropped", msg.platform, msg.event_id)
                continue
            fresh.append(msg)
            task = asyncio.create_task(self._run(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return fresh

    async def _run(self, msg: Inbound) -> None:
        try:
            await self.dispatch(msg)
        except Exception:  # the boundary: one bad message must not take the others down
            log.exception("handling %s message %s failed", msg.platform, msg.event_id)

    async def drain(self) -> None:
        """Wait for the work in flight: on shutdown, and in tests instead of sleeping."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
