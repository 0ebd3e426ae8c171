"""A parsed schedule and when it fires, on the working-day calendar, in Asia/Shanghai.

Forms that name working days (工作日, 第N个工作日, 最后一个工作日) consult the calendar, so
holidays are skipped and 调休 Saturdays count. Calendar-day forms (每天, 每周一, 每月1日, cron)
fire as written, holidays included: a job that should rest on holidays says 工作日.

Month ends: days 29-31 fall on the last day of a shorter month (每月31日 fires on 4月30日), the
same rule as the plan's due dates (bot.duerules), so 每月31日 means "every month end" rather than
silently skipping five months a year as cron does; cron expressions keep cron's skipping. A
month with fewer than N working days fires 第N个工作日 on its last working day, also as due
dates do.
"""

from __future__ import annotations

import calendar
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

from bot.clock import SHANGHAI
from bot.schedules.cron import CronExpr
from bot.workdays import WorkCalendar

if TYPE_CHECKING:
    from bot.schedules.trigger import ScheduleTrigger

Kind = Literal["daily", "weekly", "workdays", "monthly", "cron", "union"]
Scope = Literal["month", "quarter", "year"]
Anchor = Literal["days", "nth_workday", "last_workday", "last_day"]

# Long enough for the rarest cron day (29 February, eight years apart around 2100).
_HORIZON_DAYS = 9 * 366
_WEEKDAY_NAMES = "一二三四五六日"
QUARTER_MONTH_NAMES = {1: "首月", 2: "中间月", 3: "末月"}


def month_end(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """kind "monthly" covers month, quarter and year scopes: month is 1-3 within the quarter
    for "quarter", 1-12 for "year", else 0. weekdays use Python's numbering (Monday = 0)."""

    kind: Kind
    hour: int = 0
    minute: int = 0
    weekdays: tuple[int, ...] = ()
    scope: Scope = "month"
    month: int = 0
    anchor: Anchor = "days"
    days: tuple[int, ...] = ()
    nth: int = 0
    cron: CronExpr | None = None
    # kind "union": fires on any part's days (每周一及每月15日), at this spec's time.
    parts: tuple[ScheduleSpec, ...] = ()

    @property
    def uses_workdays(self) -> bool:
        if self.kind == "union":
            return any(p.uses_workdays for p in self.parts)
        return self.kind == "workdays" or (
            self.kind == "monthly" and self.anchor in ("nth_workday", "last_workday")
        )

    # -- when ----------------------------------------------------------------------------------

    def _times(self) -> tuple[time, ...]:
        return self.cron.times if self.cron else (time(self.hour, self.minute),)

    def _in_scope(self, month: int) -> bool:
        if self.scope == "quarter":
            return (month - self.month) % 3 == 0
        return self.scope == "month" or month == self.month

    def _month_days(self, year: int, month: int, cal: WorkCalendar) -> list[date]:
        if not self._in_scope(month):
            return []
        end = month_end(year, month)
        if self.anchor == "days":
            return sorted({date(year, month, min(d, end)) for d in self.days})
        if self.anchor == "last_day":
            return [date(year, month, end)]
        found = cal.nth_workday(year, month, self.nth) if self.anchor == "nth_workday" else None
        found = found or cal.last_workday(year, month)
        return [found] if found else []

    def _fire_days(self, start: date, cal: WorkCalendar) -> Iterator[date]:
        """Days on which the schedule fires, from start (inclusive) on, within the horizon."""
        try:
            last = start + timedelta(days=_HORIZON_DAYS)
        except OverflowError:
            last = date.max
        if self.kind == "union":
            merged = heapq.merge(*(p._fire_days(start, cal) for p in self.parts))
            yield from (day for day, _ in itertools.groupby(merged))  # a day both parts name
            return
        if self.kind == "monthly":
            year, month = start.year, start.month
            while year <= last.year and date(year, month, 1) <= last:
                yield from (d for d in self._month_days(year, month, cal) if d >= start)
                year, month = (year, month + 1) if month < 12 else (year + 1, 1)
            return
        fires: Callable[[date], bool] = {
            "daily": lambda d: True,
            "weekly": lambda d: d.weekday() in self.weekdays,
            "workdays": cal.is_workday,
            "cron": lambda d: self.cron is not None and self.cron.fires_on(d),
        }[self.kind]
        day = start
        while day < last:
            if fires(day):
                yield day
            day += timedelta(days=1)

    def next_fire_times(
        self, after: datetime, calendar: WorkCalendar, count: int = 5
    ) -> list[datetime]:
        """Up to count fire times strictly after `after` (aware), in Asia/Shanghai."""
        if after.tzinfo is None:
            raise ValueError(f"naive datetime refused: {after!r}")
        after = after.astimezone(SHANGHAI)
        found: list[datetime] = []
        if count <= 0:
            return found
        times = self._times()
        for day in self._fire_days(after.date(), calendar):
            for t in times:
                at = datetime.combine(day, t, SHANGHAI)
                if at > after:
                    found.append(at)
                    if len(found) == count:
                        return found
        return found

    def trigger(self, calendar_provider: Callable[[], WorkCalendar]) -> ScheduleTrigger:
        from bot.schedules.trigger import ScheduleTrigger

        return ScheduleTrigger(self, calendar_provider)

    # -- what ----------------------------------------------------------------------------------

    def describe(self) -> str:
        """Normalised Chinese that parse_schedule reads back as the same schedule."""
        if self.cron:
            return f"cron {self.cron.text}"
        at = f"{self.hour}:{self.minute:02d}"
        if self.kind == "union":
            return (
                "及".join(p._days_text() for p in self.parts)
                + f" {at}"
                + "".join(p._clamp_note() for p in self.parts[-1:])
            )
        if self.kind in ("daily", "workdays", "weekly"):
            return f"{self._days_text()} {at}"
        return f"{self._where()} {at}{self._clamp_note()}"

    def _days_text(self) -> str:
        if self.kind == "daily":
            return "每天"
        if self.kind == "workdays":
            return "每个工作日"
        if self.kind == "weekly":
            return f"每{_weekdays(self.weekdays)}"
        return self._where()

    def _where(self) -> str:
        default_month = 1 if self.anchor == "nth_workday" else 3
        if self.scope == "month":
            where = "每月"
        elif self.scope == "year":
            where = f"每年{self.month}月"
        elif self.anchor != "days" and self.month == default_month:
            where = "每季度"  # 每季度第一个工作日 / 每季度最后一个工作日 say it all
        else:
            where = "每季度" + QUARTER_MONTH_NAMES[self.month]
        if self.anchor == "nth_workday":
            return where + ("第一个工作日" if self.nth == 1 else f"第{self.nth}个工作日")
        if self.anchor == "last_workday":
            return where + "最后一个工作日"
        if self.anchor == "last_day":
            return where + "最后一天"
        return where + "、".join(f"{d}日" for d in self.days)

    def _clamp_note(self) -> str:
        if self.kind != "monthly" or self.anchor != "days":
            return ""
        months = [m for m in range(1, 13) if self._in_scope(m)]
        if max(self.days) <= min(month_end(2026, m) for m in months):  # 2026: common year
            return ""
        return "（平年取2月28日）" if self.scope == "year" else "（小月取月末）"


def _weekdays(weekdays: tuple[int, ...]) -> str:
    first, last = weekdays[0], weekdays[-1]
    if len(weekdays) >= 3 and weekdays == tuple(range(first, last + 1)):
        return f"周{_WEEKDAY_NAMES[first]}至周{_WEEKDAY_NAMES[last]}"
    return "、".join(f"周{_WEEKDAY_NAMES[d]}" for d in weekdays)
