"""Plain 5-field cron (minute hour day-of-month month day-of-week), with cron's own meaning.

APScheduler 3's CronTrigger.from_crontab counts weekdays from Monday = 0, so `30 8 * * 1-5`
would fire Tuesday to Saturday (agronholm/apscheduler#286); admins copy cron lines from
elsewhere, so the fields are parsed here with the classic meaning instead: 0 and 7 are Sunday,
and when both day fields are restricted a day matching either one fires (Vixie cron).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, time
from itertools import product

_FIELDS = (
    ("分钟", "minute", 0, 59),
    ("小时", "hour", 0, 23),
    ("日", "day of month", 1, 31),
    ("月", "month", 1, 12),
    ("星期", "day of week", 0, 7),
)
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ITEM = re.compile(r"(?:(?P<star>\*)|(?P<a>\w+)(?:-(?P<b>\w+))?)(?:/(?P<step>\d+))?")


class CronFieldError(ValueError):
    """One field is wrong; zh and en say which and why, for ScheduleError to wrap."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh, self.en = zh, en


@dataclass(frozen=True, slots=True)
class CronExpr:
    text: str  # the five fields, single-spaced
    times: tuple[time, ...]  # every (hour, minute) of a firing day, sorted
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # Python's numbering: Monday = 0
    any_day: bool  # the day-of-month field starts with "*"
    any_weekday: bool

    def fires_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day, by_weekday = day.day in self.days, day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday


def _value(token: str, index: int) -> int:
    low = token.lower()
    if index == 3 and low in _MONTH_NAMES:
        return _MONTH_NAMES.index(low) + 1
    if index == 4 and low in _DOW_NAMES:
        return _DOW_NAMES.index(low)
    if not token.isdigit():
        zh, en = _FIELDS[index][:2]
        raise CronFieldError(f"第{index + 1}段（{zh}）中的“{token}”不是数字", f"bad {en} {token!r}")
    return int(token)


def _field(text: str, index: int) -> set[int]:
    zh, en, lo, hi = _FIELDS[index]
    values: set[int] = set()
    for item in text.split(","):
        m = _ITEM.fullmatch(item)
        if not m:
            raise CronFieldError(f"第{index + 1}段（{zh}）“{text}”写法不对", f"bad {en} field")
        first, last = lo, hi
        if m["a"]:
            first = _value(m["a"], index)
            last = _value(m["b"], index) if m["b"] else (hi if m["step"] else first)
        step = int(m["step"] or 1)
        if not (lo <= first <= hi and lo <= last <= hi):
            raise CronFieldError(
                f"第{index + 1}段（{zh}）“{item}”超出范围{lo}-{hi}", f"{en} out of range {lo}-{hi}"
            )
        if first > last or step == 0:
            raise CronFieldError(f"第{index + 1}段（{zh}）“{item}”范围无效", f"bad {en} range")
        values.update(range(first, last + 1, step))
    return values


def parse_cron(text: str) -> CronExpr:
    """Parse five cron fields; raises CronFieldError naming the field."""
    parts = text.split()
    if len(parts) != 5:
        raise CronFieldError(
            f"cron 表达式应为5段（分 时 日 月 周），这里有{len(parts)}段",
            f"cron needs 5 fields, got {len(parts)}",
        )
    minutes, hours, days, months, dows = (_field(p, i) for i, p in enumerate(parts))
    weekdays = frozenset((d - 1) % 7 for d in dows)  # cron: 0 and 7 = Sunday, 1 = Monday
    any_day, any_weekday = parts[2].startswith("*"), parts[4].startswith("*")
    # Only days-of-month alone can be impossible (31 in February); weekdays always come round.
    if not any_day and any_weekday:
        longest = max(calendar.monthrange(2024, m)[1] for m in months)  # 2024: leap year
        if min(days) > longest:
            raise CronFieldError(
                "cron 表达式的日和月永远凑不到一起，不会触发", "the cron expression never fires"
            )
    return CronExpr(
        text=" ".join(parts),
        times=tuple(time(h, m) for h, m in product(sorted(hours), sorted(minutes))),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=weekdays,
        any_day=any_day,
        any_weekday=any_weekday,
    )
