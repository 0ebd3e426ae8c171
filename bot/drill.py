"""DUBAN_CLOCK_START: a process clock for drills (演练) and tests, never for production.

A drill replays a working day against a staging copy: the process believes it is the given
instant when it starts and time runs at real speed from there, so the 9:00 jobs fire at 9:00
of that day, callbacks are checked against it and deadlines fall as they would. Everything in
the app reads the time through its Clock; APScheduler alone reads the real time itself, so it
gets the same triggers moved by the same amount (ShiftedScheduler). Without the setting the
app uses SystemClock and the plain AsyncIOScheduler: nothing here is on the production path.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from bot.clock import SHANGHAI, Clock, SystemClock
from bot.settings import Settings

log = logging.getLogger(__name__)


class ShiftedClock:
    """The real time moved by a fixed amount: starts at ``start`` and runs at real speed."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=SHANGHAI)
        self.shift = start - datetime.now(SHANGHAI)

    def now(self) -> datetime:
        return datetime.now(SHANGHAI) + self.shift


def process_clock(settings: Settings) -> Clock:
    if settings.clock_start is None:
        return SystemClock()
    clock = ShiftedClock(settings.clock_start)
    log.warning(
        "process clock starts at %s (DUBAN_CLOCK_START): a drill or a test, not production",
        clock.now().isoformat(timespec="seconds"),
    )
    return clock


def scheduler_for(clock: Clock) -> AsyncIOScheduler:
    if isinstance(clock, ShiftedClock):
        return ShiftedScheduler(clock.shift, timezone=SHANGHAI)
    return AsyncIOScheduler(timezone=SHANGHAI)


class ShiftedTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Fires when the shifted clock shows what ``inner`` computes; APScheduler passes and
    expects real times."""

    __slots__ = ("inner", "shift")

    def __init__(self, inner: BaseTrigger, shift: timedelta) -> None:
        self.inner, self.shift = inner, shift

    @property
    def spec(self) -> Any:  # Scheduling.occurrence reads the schedule through the trigger
        return getattr(self.inner, "spec", None)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        previous = None if previous_fire_time is None else previous_fire_time + self.shift
        found: datetime | None = self.inner.get_next_fire_time(previous, now + self.shift)
        return None if found is None else found - self.shift

    def __str__(self) -> str:
        return str(self.inner)

    def __repr__(self) -> str:
        return f"<ShiftedTrigger {self.inner!r} by {self.shift}>"


class ShiftedScheduler(AsyncIOScheduler):  # type: ignore[misc]
    def __init__(self, shift: timedelta, **options: Any) -> None:
        super().__init__(**options)
        self.shift = shift

    def _shifted(self, trigger: Any) -> Any:
        if isinstance(trigger, BaseTrigger) and not isinstance(trigger, ShiftedTrigger):
            return ShiftedTrigger(trigger, self.shift)
        return trigger

    def add_job(self, func: Any, trigger: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().add_job(func, self._shifted(trigger), *args, **kwargs)

    def reschedule_job(
        self, job_id: str, jobstore: str | None = None, trigger: Any = None, **trigger_args: Any
    ) -> Any:
        return super().reschedule_job(job_id, jobstore, self._shifted(trigger), **trigger_args)
