"""Periods and dates as people write them in chat: 十月, 2026-Q4, 上个月, 11月30日, 下周五, 月底.

Pure functions, `today` passed in (from the clock). Blanks, full-width characters, Chinese
numerals and trailing punctuation are forgiven. Decisions (the tests pin each one):

- A month or quarter without a year is its most recent occurrence that is not after the next
  period: on 2026-11-21 十月 is 2026-10, 十二月 2026-12 and 一月 2026-01; on 2027-01-05 十二月
  is 2026-12 and 二月 2027-02. People ask about now and the recent past, and plan one period
  ahead; on 2026-11-21 一季度 is therefore 2027-Q1.
- A date without a year is the next such date on or after today (11月30日, 11-30, 30号); 2月29日
  waits for a leap year. A bare weekday (周五) is the next one on or after today; 本周/下周/上周
  count weeks from Monday. A trailing 前/之前/以前 after a date is dropped (11月30日前).
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from bot.duerules import Period, PeriodCadence
from bot.textfold import fold_width, replace_chinese_numerals

_THIS = r"(?:本|这|这个|当|当前)"
_PREVIOUS = r"(?:上1?个?)"
_NEXT = r"(?:下1?个?)"
_RELATIVE_PERIODS: list[tuple[re.Pattern[str], PeriodCadence, int]] = [
    (re.compile(f"{_THIS}月份?"), "monthly", 0),
    (re.compile(f"{_PREVIOUS}月份?"), "monthly", -1),
    (re.compile(f"{_NEXT}月份?"), "monthly", 1),
    (re.compile(f"{_THIS}季度?"), "quarterly", 0),
    (re.compile(f"{_PREVIOUS}季度?"), "quarterly", -1),
    (re.compile(f"{_NEXT}季度?"), "quarterly", 1),
    (re.compile("(?:今|本|当)年度?"), "yearly", 0),
    (re.compile("(?:去|上1?)年度?"), "yearly", -1),
    (re.compile("(?:明|下1?)年度?"), "yearly", 1),
]
_YEAR = r"(?P<year>\d{4})"
_MONTH = re.compile(rf"(?:{_YEAR}(?:年|-|/|\.))?(?P<month>\d{{1,2}})(?(year)月?|月)份?")
_QUARTER = re.compile(
    rf"(?:{_YEAR}(?:年度?|-|/|\.)?)?(?:第?(?P<q>[1-4])季度?|[Qq](?P<qq>[1-4]))(?:季度)?"
)
_WHOLE_YEAR = re.compile(rf"{_YEAR}年?度?")


def _prepare(text: str) -> str:
    text = replace_chinese_numerals("".join(fold_width(text).split()))
    return text.rstrip("。！!？?~～…⋯.")


def parse_period(text: str, today: date) -> Period | None:
    """A month, quarter or year; None if the text is none (or names a month 13)."""
    s = _prepare(text)
    try:
        return _period(s, today)
    except ValueError:
        return None


def split_period(text: str, today: date) -> tuple[Period | None, str]:
    """A period written at the start of `text` and what follows it (十一月第五共同体 →
    2026-11, 第五共同体); the longest reading wins. (None, text) when it starts with none."""
    s = text.strip()
    for end in range(len(s), 0, -1):
        period = parse_period(s[:end], today)
        if period is not None:
            return period, s[end:].strip()
    return None, s


def _period(s: str, today: date) -> Period | None:
    for pattern, cadence, shift in _RELATIVE_PERIODS:
        if pattern.fullmatch(s):
            period = Period.containing(cadence, today)
            return period.previous() if shift < 0 else period.next() if shift > 0 else period
    if m := _MONTH.fullmatch(s):
        return _in_year(m["year"], "monthly", int(m["month"]), today)
    if m := _QUARTER.fullmatch(s):
        return _in_year(m["year"], "quarterly", int(m["q"] or m["qq"]), today)
    if m := _WHOLE_YEAR.fullmatch(s):
        return Period("yearly", int(m["year"]), 0)
    return None


def _in_year(year: str | None, cadence: PeriodCadence, index: int, today: date) -> Period:
    if year:
        return Period(cadence, int(year), index)
    limit = Period.containing(cadence, today).next()
    latest = Period(cadence, limit.year, index)
    return latest if latest <= limit else Period(cadence, limit.year - 1, index)


_DAYS_FROM_TODAY = {
    "今天": 0, "今日": 0, "明天": 1, "明日": 1, "后天": 2, "大后天": 3,
    "昨天": -1, "昨日": -1, "前天": -2,
}  # fmt: skip
_FULL_DATE = re.compile(r"(\d{4})(?:[-/.](\d{1,2})[-/.](\d{1,2})|年(\d{1,2})月(\d{1,2})日?)")
_MONTH_DAY = re.compile(r"(\d{1,2})(?:[-/.](\d{1,2})|月(\d{1,2})日?)")
_DAY_ONLY = re.compile(r"(\d{1,2})日")
_WEEKDAY = re.compile(rf"(?P<which>{_THIS}|{_PREVIOUS}|{_NEXT})?(?:周|星期|礼拜)(?P<day>[1-7日天])")
_MONTH_END = re.compile(
    rf"(?:(?P<which>{_THIS}|{_PREVIOUS}|{_NEXT})|(?P<month>\d{{1,2}}))?月[底末]"
)
_YEAR_END = re.compile("(?:今|本)?年年?[底末]")
_QUARTER_END = re.compile(f"{_THIS}?季度?[底末]")


def parse_date(text: str, today: date) -> date | None:
    """A calendar day; None if the text is none or names a day that does not exist."""
    s = re.sub(r"(?<=[0-9日底末])(?:之前|以前|前)$", "", _prepare(text).replace("号", "日"))
    try:
        return _date(s, today)
    except ValueError:
        return None


def _date(s: str, today: date) -> date | None:
    if s in _DAYS_FROM_TODAY:
        return today + timedelta(days=_DAYS_FROM_TODAY[s])
    if m := _FULL_DATE.fullmatch(s):
        return date(int(m[1]), int(m[2] or m[4]), int(m[3] or m[5]))
    if m := _MONTH_DAY.fullmatch(s):
        return _upcoming(today, int(m[1]), int(m[2] or m[3]))
    if m := _DAY_ONLY.fullmatch(s):
        for offset in range(13):
            year, month = divmod(today.year * 12 + today.month - 1 + offset, 12)
            if int(m[1]) <= calendar.monthrange(year, month + 1)[1]:
                candidate = date(year, month + 1, int(m[1]))
                if candidate >= today:
                    return candidate
        return None
    if m := _WEEKDAY.fullmatch(s):
        weekday = 6 if m["day"] in "日天" else int(m["day"]) - 1
        monday = today - timedelta(days=today.weekday())
        which = m["which"] or ""
        if not which:
            return today + timedelta(days=(weekday - today.weekday()) % 7)
        weeks = -1 if which.startswith("上") else 1 if which.startswith("下") else 0
        return monday + timedelta(days=7 * weeks + weekday)
    if m := _MONTH_END.fullmatch(s):
        if m["month"]:
            return _upcoming(today, int(m["month"]), 0)
        which = m["which"] or ""
        this_month = Period.containing("monthly", today)
        if which.startswith(("上", "下")):
            this_month = this_month.previous() if which.startswith("上") else this_month.next()
        return this_month.last_day
    if _YEAR_END.fullmatch(s):
        return date(today.year, 12, 31)
    if _QUARTER_END.fullmatch(s):
        return Period.containing("quarterly", today).last_day
    return None


def _upcoming(today: date, month: int, day: int) -> date | None:
    """The next month-day on or after today; day 0 means the month's last day."""
    if not 1 <= month <= 12:
        return None
    for year in range(today.year, today.year + 9):
        last = calendar.monthrange(year, month)[1]
        if day <= last:
            candidate = date(year, month, day or last)
            if candidate >= today:
                return candidate
    return None
