"""The Chinese working-day calendar: public holidays, 调休 make-up working days, admin overrides.

Three layers, the first that knows a day wins:
1. admin overrides (CalendarDay rows with source "admin", set by the 工作日 command);
2. the State Council's published arrangement, from the chinesecalendar package (2004 to the
   last year it ships; each release adds the year announced that November);
3. Monday to Friday, for a year whose arrangement is not published yet. Such a year is
   "unknown": jobs ask `unknown_years_in` and warn the admins, who set its days by command.

WorkCalendar is an immutable value built once and swapped when an admin changes a day, so jobs
and triggers that hold a provider see the change without being rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

import chinese_calendar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.duerules import weekday_is_workday
from bot.models import CalendarDay

ADMIN = "admin"
Source = Literal["admin", "published", "weekday"]

# Longer than any run of Chinese holidays plus 调休 weekends; a longer gap means a broken calendar.
_SEARCH_LIMIT = 60
_NOTE_LIMIT = 64  # the calendar_days.note column


@dataclass(frozen=True, slots=True)
class Mark:
    """A day whose status differs from Monday–Friday, and why (e.g. 国庆节, 国庆节调休)."""

    is_workday: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class DayStatus:
    day: date
    is_workday: bool
    source: Source
    note: str = ""

    def describe(self) -> str:
        """One line for a chat reply, e.g. 2026-10-10 星期六 上班（国庆节调休）."""
        weekday = "一二三四五六日"[self.day.weekday()]
        word = "上班" if self.is_workday else "休息"
        why = {"admin": "管理员设置", "published": "", "weekday": "当年安排未公布，按周一至周五"}
        reason = "，".join(part for part in (self.note, why[self.source]) if part)
        return f"{self.day.isoformat()} 星期{weekday} {word}" + (f"（{reason}）" if reason else "")


def _frozen(marks: Mapping[date, Mark]) -> Mapping[date, Mark]:
    return MappingProxyType(dict(marks))


@dataclass(frozen=True, slots=True, repr=False)
class WorkCalendar:
    """published: days differing from Monday–Friday in the years listed in published_years;
    overrides: admins' days, which win over everything."""

    published: Mapping[date, Mark] = field(default_factory=dict)
    published_years: frozenset[int] = frozenset()
    overrides: Mapping[date, Mark] = field(default_factory=dict)

    def __repr__(self) -> str:
        years = sorted(self.published_years)
        span = f"{years[0]}-{years[-1]}" if years else "none"
        return f"<WorkCalendar published {span}, {len(self.overrides)} overrides>"

    @classmethod
    def official(cls) -> WorkCalendar:
        """The published arrangements shipped with the chinesecalendar package."""
        return _official()

    def with_overrides(self, overrides: Mapping[date, Mark]) -> WorkCalendar:
        return WorkCalendar(self.published, self.published_years, _frozen(overrides))

    def published_through(self, last_year: int) -> WorkCalendar:
        """This calendar as if nothing after last_year were published yet: for tests and
        previews that must not change when a newer chinesecalendar release adds a year."""
        marks = {d: m for d, m in self.published.items() if d.year <= last_year}
        years = frozenset(y for y in self.published_years if y <= last_year)
        return WorkCalendar(_frozen(marks), years, self.overrides)

    # -- single days ---------------------------------------------------------------------------

    def status(self, day: date) -> DayStatus:
        if (mark := self.overrides.get(day)) is not None:
            return DayStatus(day, mark.is_workday, "admin", mark.note)
        if day.year in self.published_years:
            mark = self.published.get(day)
            if mark is not None:
                return DayStatus(day, mark.is_workday, "published", mark.note)
            return DayStatus(day, weekday_is_workday(day), "published")
        return DayStatus(day, weekday_is_workday(day), "weekday")

    def is_workday(self, day: date) -> bool:
        if (mark := self.overrides.get(day)) is not None:
            return mark.is_workday
        if (mark := self.published.get(day)) is not None:
            return mark.is_workday
        return weekday_is_workday(day)

    def known(self, year: int) -> bool:
        """Whether the year's holiday arrangement is published (and so in this calendar)."""
        return year in self.published_years

    def unknown_years_in(self, start: date, end: date) -> list[int]:
        """Years touching start..end (inclusive) that fall back to Monday–Friday."""
        return [y for y in range(start.year, end.year + 1) if not self.known(y)]

    # -- walking -------------------------------------------------------------------------------

    def _walk(self, start: date, step: int) -> Iterator[date]:
        """Working days strictly after (step 1) or before (step -1) start, nearest first."""
        day, gap = start, 0
        while True:
            day += timedelta(days=step)
            if self.is_workday(day):
                gap = 0
                yield day
            else:
                gap += 1
                if gap > _SEARCH_LIMIT:
                    raise ValueError(
                        f"{start} 附近连续{_SEARCH_LIMIT}天没有工作日，请检查工作日历"
                        f" (no working day near {start})"
                    )

    def next_workday(self, day: date) -> date:
        """The first working day strictly after day."""
        return next(self._walk(day, 1))

    def previous_workday(self, day: date) -> date:
        """The last working day strictly before day."""
        return next(self._walk(day, -1))

    def add_workdays(self, day: date, n: int) -> date:
        """The n-th working day after day (n > 0) or before it (n < 0); day itself never counts,
        so a due date plus 3 is the third working day after it. n == 0 returns day as it is."""
        if n == 0:
            return day
        walk = self._walk(day, 1 if n > 0 else -1)
        for _ in range(abs(n) - 1):
            next(walk)
        return next(walk)

    def workdays_between(self, a: date, b: date) -> int:
        """Working days in (a, b] when b >= a, minus those in [b, a) when b < a: the inverse of
        add_workdays, so workdays_between(a, add_workdays(a, n)) == n."""
        lo, hi, sign = (a, b, 1) if b >= a else (b - timedelta(days=1), a - timedelta(days=1), -1)
        days = (lo + timedelta(days=i) for i in range(1, (hi - lo).days + 1))
        return sign * sum(1 for d in days if self.is_workday(d))

    # -- months --------------------------------------------------------------------------------

    def workdays_of_month(self, year: int, month: int) -> list[date]:
        day, days = date(year, month, 1), []
        while day.month == month:
            if self.is_workday(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def nth_workday(self, year: int, month: int, n: int) -> date | None:
        """The n-th (1-based) working day of the month; None when the month has fewer."""
        days = self.workdays_of_month(year, month)
        return days[n - 1] if 1 <= n <= len(days) else None

    def last_workday(self, year: int, month: int) -> date | None:
        days = self.workdays_of_month(year, month)
        return days[-1] if days else None


@cache
def _official() -> WorkCalendar:
    names = {h.value: h.chinese for h in chinese_calendar.Holiday}
    marks: dict[date, Mark] = {}
    for day, name in chinese_calendar.holidays.items():
        marks[day] = Mark(False, names.get(name, ""))
    for day, name in chinese_calendar.workdays.items():
        marks[day] = Mark(True, names[name] + "调休" if name in names else "调休")
    years = {d.year for d in chinese_calendar.holidays}
    # The package covers a contiguous span of years; a year with no holiday is still published.
    span = frozenset(range(min(years), max(years) + 1))
    return WorkCalendar(_frozen(marks), span)


# -- persistence -------------------------------------------------------------------------------


async def load_calendar(session: AsyncSession, base: WorkCalendar | None = None) -> WorkCalendar:
    """The published calendar (or base) with the admins' overrides from the database."""
    rows = await session.scalars(select(CalendarDay).where(CalendarDay.source == ADMIN))
    overrides = {row.day: Mark(row.is_workday, row.note) for row in rows}
    return (base or WorkCalendar.official()).with_overrides(overrides)


def _state(status: DayStatus) -> dict[str, Any]:
    return {"is_workday": status.is_workday, "source": status.source, "note": status.note}


async def set_day(
    session: AsyncSession,
    day: date,
    is_workday: bool,
    actor: str,
    now: datetime,
    note: str = "",
    base: WorkCalendar | None = None,
) -> DayStatus:
    """An admin's decision for one day, stored and audited in the caller's transaction.

    The audit entry's before is the day's effective status until now (admin, published or the
    Monday–Friday fallback), so the log shows what the admin changed, not only the row.
    """
    note = " ".join(note.split())[:_NOTE_LIMIT]
    row = await session.get(CalendarDay, day)
    if row is not None and row.source == ADMIN:
        before = DayStatus(day, row.is_workday, "admin", row.note)
    else:
        before = (base or WorkCalendar.official()).status(day)
    if row is None:
        row = CalendarDay(day=day, is_workday=is_workday, source=ADMIN, note=note, updated_at=now)
        session.add(row)
    else:
        row.is_workday, row.source, row.note, row.updated_at = is_workday, ADMIN, note, now
    after = DayStatus(day, is_workday, "admin", note)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="calendar.set_day",
        entity="calendar_day",
        key=day.isoformat(),
        before=_state(before),
        after=_state(after),
    )
    await session.flush()
    return after
