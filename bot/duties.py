"""What only the leader runs (bot.leader decides which instance that is), started on gaining
leadership and stopped on losing it, as often as that happens in one process:

- the scheduler, its jobs read afresh from the database (an admin may have changed them on
  another instance), then the catch-up of what was due while nobody led;
- a watch on the stored schedules and working days, which commands on other instances change;
- the delivery worker, which also sends what followers queued;
- the WeCom 智能机器人 long connection: the platform keeps one per bot, so two instances
  would knock each other off, and the leader's worker sends proactive posts over it.

Stopping is safe at any point: an occurrence is claimed in the transaction of its effects and
an outbox row is claimed before it is sent, so the next leader neither repeats nor loses work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED

from bot.adapters.wecom_aibot_ws import AibotConnection, WsBotTransport
from bot.delivery import DeliveryWorker
from bot.leader import Leadership
from bot.scheduling import Scheduling
from bot.workdays import WorkCalendar, load_calendar

log = logging.getLogger(__name__)

FOLLOW_SECONDS = 5.0  # how soon a schedule changed on another instance reaches the leader
STOP_GRACE = 10.0  # seconds the sends in flight get when the worker stops


class Duties:
    def __init__(
        self,
        *,
        scheduler: AsyncIOScheduler,
        scheduling: Scheduling,
        worker: DeliveryWorker,
        catch_up_grace: timedelta,
        scheduler_enabled: bool = True,
        aibot: AibotConnection | None = None,
        new_aibot: Callable[[], AibotConnection | None] | None = None,
        transport: WsBotTransport | None = None,
    ) -> None:
        self.scheduler, self.scheduling, self.worker = scheduler, scheduling, worker
        self.grace, self.scheduler_enabled = catch_up_grace, scheduler_enabled
        self.aibot, self._new_aibot, self._transport = aibot, new_aibot, transport
        self.active = False  # everything started, until stop() begins
        self._started = False
        self.catch_up: asyncio.Task[list[str]] | None = None
        self._aibot_used = False
        self._follow: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._aibot: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.worker.resume()
        self._worker = asyncio.create_task(self.worker.run())
        self._start_aibot()
        if self.scheduler_enabled:
            await self._reload()
            if self.scheduler.state == STATE_STOPPED:
                self.scheduler.start()
            else:
                self.scheduler.resume()
            self.catch_up = asyncio.create_task(self.scheduling.catch_up(self.grace))
            self._follow = asyncio.create_task(self._follow_database())
        self.active = True
        log.info("leader duties started (scheduler: %s)", "on" if self.scheduler_enabled else "off")

    async def stop_scheduler(self) -> None:
        """No new firings; the catch-up in progress finishes (its transaction is short)."""
        if self._follow is not None:
            self._follow.cancel()
            await asyncio.gather(self._follow, return_exceptions=True)
            self._follow = None
        if self.scheduler.state == STATE_RUNNING:
            self.scheduler.pause()
        if self.catch_up is not None:
            await asyncio.gather(self.catch_up, return_exceptions=True)

    def stop_links(self) -> None:
        """The long connection first on shutdown, so that nothing new arrives while draining."""
        if self.aibot is not None and self._aibot is not None:
            self.aibot.stop()

    async def stop(self) -> None:
        self.active = False
        await self.stop_scheduler()
        if self._worker is not None:
            await self.worker.stop(STOP_GRACE)
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._aibot is not None:
            self.stop_links()
            await asyncio.gather(self._aibot, return_exceptions=True)
            self._aibot = None
        if self._started:
            log.info("leader duties stopped")
        self._started = False

    def _start_aibot(self) -> None:
        if self.aibot is None:
            return
        if self._aibot_used and self._new_aibot is not None:
            fresh = self._new_aibot()  # a stopped connection does not start again
            if fresh is not None:
                self.aibot = fresh
                if self._transport is not None:
                    self._transport.connection = fresh
        self._aibot_used = True
        self._aibot = asyncio.create_task(self.aibot.run())

    async def _read(self) -> tuple[WorkCalendar, tuple[Any, ...]]:
        """The working days as stored now, and what the scheduler would need to change for."""
        async with self.scheduling.db.begin() as session:
            calendar = await load_calendar(session, self.scheduling.calendar.base)
            effective = await self.scheduling.effective(session)
        jobs = tuple((e.job.name, e.spec, e.paused) for e in effective)
        return calendar, (tuple(sorted(calendar.overrides.items())), jobs)

    async def _reload(self) -> tuple[Any, ...]:
        """The stored working days and schedules put in force; what was read."""
        calendar, seen = await self._read()
        self.scheduling.calendar.calendar = calendar
        await self.scheduling.apply_all()
        return seen

    async def _follow_database(self) -> None:
        seen: tuple[Any, ...] | None = None
        while True:
            try:
                _, now = await self._read()
                if seen is not None and now != seen:
                    log.info("schedules or working days changed: the scheduler follows them")
                    now = await self._reload()
                    # A job due in the very instant of the swap is not skipped.
                    await self.scheduling.catch_up(self.grace)
                seen = now
            except Exception as e:  # the database is away: look again next time
                log.warning("could not read the stored schedules: %s", type(e).__name__)
            await asyncio.sleep(FOLLOW_SECONDS)


async def lead(leadership: Leadership, duties: Duties, retry: float = 5.0) -> None:
    """Start the duties on every gain of leadership and stop them on every loss, until
    cancelled (the app's shutdown then stops them itself, before giving the lock up)."""
    while True:
        await leadership.wait_for(True)
        try:
            await duties.start()
        except Exception:  # e.g. the database went away between the lock and the schedules
            log.exception("leader duties could not start; trying again in %.0f s", retry)
            await _stop(duties)
            await asyncio.sleep(retry)
            continue
        await leadership.wait_for(False)
        await _stop(duties)


async def _stop(duties: Duties) -> None:
    try:
        await duties.stop()
    except Exception:  # never the end of lead(): the next term needs it
        log.exception("leader duties did not stop cleanly")
