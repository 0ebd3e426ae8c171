"""Periods and dates in users' words, around a year end: 2026-11-21 (Sat) and 2027-01-05 (Tue)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import text
from bot.duerules import Period, PeriodCadence
from bot.textdates import parse_date, parse_period

NOV = date(2026, 11, 21)  # a Saturday in Q4
JAN = date(2027, 1, 5)  # a Tuesday in Q1 of the next year
CADENCES: list[PeriodCadence] = ["monthly", "quarterly", "yearly"]


def test_calendar_facts_the_cases_rely_on() -> None:
    assert NOV.weekday() == 5 and JAN.weekday() == 1


def test_bot_text_offers_them_too() -> None:
    assert text.parse_period is parse_period and text.parse_date is parse_date


@pytest.mark.parametrize(
    ("text", "in_nov", "in_jan"),
    [
        # months without a year: the latest one not after next month
        ("十月", "2026-10", "2026-10"),
        ("10月", "2026-10", "2026-10"),
        ("１０月", "2026-10", "2026-10"),
        ("10 月份", "2026-10", "2026-10"),
        ("十一月", "2026-11", "2026-11"),
        ("十二月", "2026-12", "2026-12"),  # next month in November; last month in January
        ("一月", "2026-01", "2027-01"),
        ("二月", "2026-02", "2027-02"),
        ("三月", "2026-03", "2026-03"),
        # months with a year
        ("2026-10", "2026-10", "2026-10"),
        ("2026-9", "2026-09", "2026-09"),
        ("2026年10月", "2026-10", "2026-10"),
        ("2026 年 10 月", "2026-10", "2026-10"),
        ("二〇二六年十月", "2026-10", "2026-10"),
        ("2026年10月份", "2026-10", "2026-10"),
        ("2026.10", "2026-10", "2026-10"),
        ("2026/10", "2026-10", "2026-10"),
        ("２０２６－１０", "2026-10", "2026-10"),
        # relative months
        ("本月", "2026-11", "2027-01"),
        ("这个月", "2026-11", "2027-01"),
        ("当月", "2026-11", "2027-01"),
        ("上月", "2026-10", "2026-12"),
        ("上个月", "2026-10", "2026-12"),
        ("上一个月", "2026-10", "2026-12"),
        ("下月", "2026-12", "2027-02"),
        ("下个月", "2026-12", "2027-02"),
        # quarters
        ("2026年第四季度", "2026-Q4", "2026-Q4"),
        ("2026年四季度", "2026-Q4", "2026-Q4"),
        ("2026-Q4", "2026-Q4", "2026-Q4"),
        ("2026Q4", "2026-Q4", "2026-Q4"),
        ("2026年Q4", "2026-Q4", "2026-Q4"),
        ("第四季度", "2026-Q4", "2026-Q4"),
        ("四季度", "2026-Q4", "2026-Q4"),
        ("第4季度", "2026-Q4", "2026-Q4"),
        ("4季度", "2026-Q4", "2026-Q4"),
        ("Q4", "2026-Q4", "2026-Q4"),
        ("q4", "2026-Q4", "2026-Q4"),
        ("Ｑ４", "2026-Q4", "2026-Q4"),
        ("一季度", "2027-Q1", "2027-Q1"),  # next quarter in November
        ("二季度", "2026-Q2", "2027-Q2"),
        ("三季度", "2026-Q3", "2026-Q3"),
        ("本季度", "2026-Q4", "2027-Q1"),
        ("这个季度", "2026-Q4", "2027-Q1"),
        ("本季", "2026-Q4", "2027-Q1"),
        ("上季度", "2026-Q3", "2026-Q4"),
        ("上个季度", "2026-Q3", "2026-Q4"),
        ("下季度", "2027-Q1", "2027-Q2"),
        # years
        ("2026年", "2026", "2026"),
        ("2026", "2026", "2026"),
        ("2026年度", "2026", "2026"),
        ("二〇二六年", "2026", "2026"),
        ("今年", "2026", "2027"),
        ("本年度", "2026", "2027"),
        ("去年", "2025", "2026"),
        ("上一年", "2025", "2026"),
        ("明年", "2027", "2028"),
        # forgiven trimmings
        ("十月。", "2026-10", "2026-10"),
        ("本月？", "2026-11", "2027-01"),
    ],
)
def test_parse_period(text: str, in_nov: str, in_jan: str) -> None:
    assert parse_period(text, NOV) == Period.parse(in_nov)
    assert parse_period(text, JAN) == Period.parse(in_jan)


@pytest.mark.parametrize(
    "text",
    [
        *("", "十三月", "0月", "2026-13", "2026-Q5", "第五季度", "Q0", "0000", "10", "三"),
        *("下下月", "十月的任务", "abc", "2026-10-01", "本周", "上半年"),
    ],
)
def test_parse_period_refuses(text: str) -> None:
    assert parse_period(text, NOV) is None


@given(
    st.sampled_from(CADENCES),
    st.integers(min_value=1000, max_value=9998),
    st.integers(min_value=1, max_value=12),
    st.dates(min_value=date(1001, 1, 1), max_value=date(9998, 12, 31)),
)
def test_period_keys_and_labels_read_back(
    cadence: PeriodCadence, year: int, month: int, today: date
) -> None:
    period = Period.containing(cadence, date(year, month, 1))
    assert parse_period(period.key, today) == period
    assert parse_period(period.label, today) == period


@given(
    st.integers(min_value=1, max_value=12),
    st.dates(min_value=date(2, 1, 1), max_value=date(9998, 11, 30)),
)
def test_a_month_without_a_year_is_recent(month: int, today: date) -> None:
    found = parse_period(f"{month}月", today)
    assert found is not None and found.index == month
    limit = Period.containing("monthly", today).next()
    assert found <= limit < Period("monthly", found.year + 1, month)


@pytest.mark.parametrize(
    ("text", "in_nov", "in_jan"),
    [
        ("2026-11-30", date(2026, 11, 30), date(2026, 11, 30)),
        ("2026/11/30", date(2026, 11, 30), date(2026, 11, 30)),
        ("2026.11.30", date(2026, 11, 30), date(2026, 11, 30)),
        ("2026年11月30日", date(2026, 11, 30), date(2026, 11, 30)),
        ("2026年11月30号", date(2026, 11, 30), date(2026, 11, 30)),
        ("２０２６年１１月３０日", date(2026, 11, 30), date(2026, 11, 30)),
        ("二〇二六年十一月三十日", date(2026, 11, 30), date(2026, 11, 30)),
        # without a year: the next one on or after today
        ("11月30日", date(2026, 11, 30), date(2027, 11, 30)),
        ("11月30号", date(2026, 11, 30), date(2027, 11, 30)),
        ("11 月 30 日", date(2026, 11, 30), date(2027, 11, 30)),
        ("11-30", date(2026, 11, 30), date(2027, 11, 30)),
        ("11/30", date(2026, 11, 30), date(2027, 11, 30)),
        ("十一月三十日", date(2026, 11, 30), date(2027, 11, 30)),
        ("11月21日", date(2026, 11, 21), date(2027, 11, 21)),  # today counts
        ("11月20日", date(2027, 11, 20), date(2027, 11, 20)),
        ("1月5日", date(2027, 1, 5), date(2027, 1, 5)),
        ("2月29日", date(2028, 2, 29), date(2028, 2, 29)),
        ("30号", date(2026, 11, 30), date(2027, 1, 30)),
        ("三十日", date(2026, 11, 30), date(2027, 1, 30)),
        ("31日", date(2026, 12, 31), date(2027, 1, 31)),
        ("21号", date(2026, 11, 21), date(2027, 1, 21)),
        # words
        ("今天", NOV, JAN),
        ("明天", date(2026, 11, 22), date(2027, 1, 6)),
        ("后天", date(2026, 11, 23), date(2027, 1, 7)),
        ("大后天", date(2026, 11, 24), date(2027, 1, 8)),
        ("昨天", date(2026, 11, 20), date(2027, 1, 4)),
        ("本周五", date(2026, 11, 20), date(2027, 1, 8)),
        ("这周五", date(2026, 11, 20), date(2027, 1, 8)),
        ("周五", date(2026, 11, 27), date(2027, 1, 8)),
        ("星期五", date(2026, 11, 27), date(2027, 1, 8)),
        ("周六", NOV, date(2027, 1, 9)),
        ("下周五", date(2026, 11, 27), date(2027, 1, 15)),
        ("下个星期一", date(2026, 11, 23), date(2027, 1, 11)),
        ("下周日", date(2026, 11, 29), date(2027, 1, 17)),
        ("下礼拜天", date(2026, 11, 29), date(2027, 1, 17)),
        ("上周五", date(2026, 11, 13), date(2027, 1, 1)),
        ("月底", date(2026, 11, 30), date(2027, 1, 31)),
        ("本月底", date(2026, 11, 30), date(2027, 1, 31)),
        ("月末", date(2026, 11, 30), date(2027, 1, 31)),
        ("下个月底", date(2026, 12, 31), date(2027, 2, 28)),
        ("上月底", date(2026, 10, 31), date(2026, 12, 31)),
        ("11月底", date(2026, 11, 30), date(2027, 11, 30)),
        ("二月底", date(2027, 2, 28), date(2027, 2, 28)),
        ("年底", date(2026, 12, 31), date(2027, 12, 31)),
        ("季度末", date(2026, 12, 31), date(2027, 3, 31)),
        # trimmings
        ("11月30日前", date(2026, 11, 30), date(2027, 11, 30)),
        ("11月30日之前。", date(2026, 11, 30), date(2027, 11, 30)),
        ("月底前", date(2026, 11, 30), date(2027, 1, 31)),
    ],
)
def test_parse_date(text: str, in_nov: date, in_jan: date) -> None:
    assert parse_date(text, NOV) == in_nov
    assert parse_date(text, JAN) == in_jan


@pytest.mark.parametrize(
    "text",
    [
        *("", "11月31日", "2026-02-29", "2026-13-01", "13月1日", "32号", "0号", "周八"),
        *("前天天", "2026-11", "11", "下下周五", "abc", "十月"),
    ],
)
def test_parse_date_refuses(text: str) -> None:
    assert parse_date(text, NOV) is None


_DAYS = st.dates(min_value=date(1000, 1, 1), max_value=date(9990, 12, 31))


@given(_DAYS, _DAYS)
def test_dates_read_back(day: date, today: date) -> None:
    assert parse_date(day.isoformat(), today) == day
    assert parse_date(f"{day.year}年{day.month}月{day.day}日", today) == day
    upcoming = parse_date(f"{day.month}月{day.day}日", today)
    assert upcoming is not None and upcoming >= today
    assert (upcoming.month, upcoming.day) == (day.month, day.day)
    assert upcoming.year - today.year <= (8 if (day.month, day.day) == (2, 29) else 1)
