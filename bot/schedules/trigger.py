"""An APScheduler 3 trigger for a ScheduleSpec that reads the working-day calendar at each call.

The calendar comes from a provider rather than being captured, so an admin's 工作日 change
applies to the next fire time without rebuilding the job. Jobs live in the in-memory job store
(schedules are stored by the bot itself), so the trigger is never pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from bot.schedules.spec import ScheduleSpec
from bot.workdays import WorkCalendar

_TICK = timedelta(microseconds=1)


class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    __slots__ = ("calendar_provider", "spec")

    def __init__(self, spec: ScheduleSpec, calendar_provider: Callable[[], WorkCalendar]) -> None:
        self.spec = spec
        self.calendar_provider = calendar_provider

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # CronTrigger's contract: the first fire time at or after now, or, after a fire, the
        # first one after it even if that is already past (the scheduler handles misfires).
        start = now if previous_fire_time is None else min(now, previous_fire_time + _TICK)
        if start == previous_fire_time:
            start += _TICK
        times = self.spec.next_fire_times(start - _TICK, self.calendar_provider(), count=1)
        return times[0] if times else None

    def __str__(self) -> str:
        return self.spec.describe()

    def __repr__(self) -> str:
        return f"<ScheduleTrigger {self.spec.describe()!r}>"
