"""Due rules: every accepted form against the real 2026 calendar, roll modes, errors, periods."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.duerules import DueRule, DueRuleError, Period, parse_due_rule, weekday_is_workday

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def fields(rule: DueRule) -> tuple[object, ...]:
    return (rule.cadence, rule.roll, rule.anchor, rule.month, rule.day, rule.year)


def calendar_with(
    holidays: AbstractSet[date], makeup_days: AbstractSet[date] = frozenset()
) -> Callable[[date], bool]:
    """A Chinese-style calendar: weekdays minus holidays, plus weekend days worked (调休)."""
    return lambda d: d in makeup_days or (d.weekday() < 5 and d not in holidays)


# A National Day week shaped like China's: Thu 1 Oct to Wed 7 Oct off, Sun 20 Sep and Sat 10 Oct
# worked. Made up for the tests, not the official 2026 notice.
NATIONAL_DAY = calendar_with(
    {date(2026, 10, d) for d in range(1, 8)}, {date(2026, 9, 20), date(2026, 10, 10)}
)


def test_calendar_facts_the_cases_rely_on() -> None:
    assert date(2026, 10, 25).weekday() == SUN
    assert date(2026, 10, 31).weekday() == SAT
    assert date(2026, 11, 30).weekday() == MON
    assert date(2026, 11, 1).weekday() == SUN
    assert date(2026, 5, 31).weekday() == SUN
    assert date(2026, 2, 28).weekday() == SAT
    assert date(2026, 6, 20).weekday() == SAT
    assert date(2026, 8, 1).weekday() == SAT
    assert date(2028, 2, 29).weekday() == TUE


@pytest.mark.parametrize(
    ("text", "key", "cadence", "expected"),
    [
        # monthly
        ("每月25日前", "2026-11", "monthly", date(2026, 11, 25)),
        ("每月25日前", "2026-10", "monthly", date(2026, 10, 23)),  # Sun 25th -> Fri
        ("每月25日", "2026-10", "monthly", date(2026, 10, 23)),
        ("每月25号", "2026-10", "monthly", date(2026, 10, 23)),
        ("每月25日之前", "2026-10", "monthly", date(2026, 10, 23)),
        ("每月25日以前", "2026-10", "monthly", date(2026, 10, 23)),
        ("每月25日止", "2026-10", "monthly", date(2026, 10, 23)),
        ("每月底", "2026-11", "monthly", date(2026, 11, 30)),
        ("每月底", "2026-10", "monthly", date(2026, 10, 30)),  # Sat 31st -> Fri
        ("每月末", "2026-10", "monthly", date(2026, 10, 30)),
        ("每月月底前", "2026-11", "monthly", date(2026, 11, 30)),
        ("每月最后一天", "2026-05", "monthly", date(2026, 5, 29)),  # Sun 31st -> Fri
        ("每月最后一个工作日", "2026-05", "monthly", date(2026, 5, 29)),
        ("每月最后一个工作日", "2026-11", "monthly", date(2026, 11, 30)),
        ("每月第1个工作日", "2026-08", "monthly", date(2026, 8, 3)),  # Sat 1st
        ("每月第3个工作日", "2026-11", "monthly", date(2026, 11, 4)),
        ("每月上旬", "2026-10", "monthly", date(2026, 10, 9)),  # Sat 10th -> Fri
        ("每月中旬", "2026-11", "monthly", date(2026, 11, 20)),
        ("每月下旬", "2026-10", "monthly", date(2026, 10, 30)),
        ("每个月20日前", "2026-11", "monthly", date(2026, 11, 20)),
        # quarterly
        ("每季度末月20日前", "2026-Q4", "quarterly", date(2026, 12, 18)),  # Sun 20 Dec
        ("每季度末月20日前", "2026-Q2", "quarterly", date(2026, 6, 19)),  # Sat 20 Jun
        ("每季度首月10日", "2026-Q4", "quarterly", date(2026, 10, 9)),
        ("每季度第一个月10日", "2026-Q1", "quarterly", date(2026, 1, 9)),
        ("每季度初月15日", "2026-Q3", "quarterly", date(2026, 7, 15)),
        ("每季度第二个月15日", "2026-Q4", "quarterly", date(2026, 11, 13)),  # Sun 15 Nov
        ("每季度中间月15日", "2026-Q2", "quarterly", date(2026, 5, 15)),
        ("每季度第三个月5日", "2026-Q1", "quarterly", date(2026, 3, 5)),
        ("每季度末", "2026-Q1", "quarterly", date(2026, 3, 31)),
        ("每季度最后一天", "2026-Q4", "quarterly", date(2026, 12, 31)),
        ("每季末", "2026-Q3", "quarterly", date(2026, 9, 30)),
        ("每季度最后一个工作日", "2026-Q2", "quarterly", date(2026, 6, 30)),
        ("每季末月20日", "2026-Q3", "quarterly", date(2026, 9, 18)),  # Sun 20 Sep
        ("每季度第5个工作日", "2026-Q4", "quarterly", date(2026, 10, 7)),
        # yearly
        ("每年12月15日", "2026", "yearly", date(2026, 12, 15)),
        ("每年12月15日前", "2026", "yearly", date(2026, 12, 15)),
        ("每年6月20日", "2026", "yearly", date(2026, 6, 19)),
        ("每年10月底", "2026", "yearly", date(2026, 10, 30)),
        ("每年5月最后一个工作日", "2026", "yearly", date(2026, 5, 29)),
        ("每年年底", "2026", "yearly", date(2026, 12, 31)),
        ("每年底", "2027", "yearly", date(2027, 12, 31)),
        ("每年年中", "2026", "yearly", date(2026, 6, 30)),
        ("每年3月上旬", "2026", "yearly", date(2026, 3, 10)),
        # once
        ("2026年3月31日前", None, "once", date(2026, 3, 31)),
        ("2026年10月31日", None, "once", date(2026, 10, 30)),
        ("2026-03-31", None, "once", date(2026, 3, 31)),
        ("2026/3/31", None, "once", date(2026, 3, 31)),
        ("2026.3.31", None, "once", date(2026, 3, 31)),
        ("2026年11月底", None, "once", date(2026, 11, 30)),
        ("2026年5月最后一个工作日", None, "once", date(2026, 5, 29)),
    ],
)
def test_accepted_forms(text: str, key: str | None, cadence: str, expected: date) -> None:
    rule = parse_due_rule(text)
    assert rule.text == text
    assert rule.cadence == cadence
    assert rule.due_date(Period.parse(key) if key else None) == expected


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("每月二十五日前", "每月25日前"),
        ("每月廿五日", "每月25日"),
        ("每月２５日前", "每月25日前"),
        ("  每 月 25 日 前 ", "每月25日前"),
        ("\u3000每月25日前\u3000", "每月25日前"),
        ("每月25日前。", "每月25日前"),
        ("每月十日", "每月10日"),
        ("每月三十一日", "每月31日"),
        ("每年十二月十五日", "每年12月15日"),
        ("每年１２月１５号", "每年12月15日"),
        ("每季度末月二十日", "每季度末月20日"),
        ("每季末月20日", "每季度末月20日"),
        ("每个季度末", "每季度末"),
        ("每月第三个工作日", "每月第3个工作日"),
        ("二〇二六年三月三十一日", "2026年3月31日"),
        ("二零二六年三月三十一日前", "2026年3月31日"),
        ("２０２６／３／３１", "2026/3/31"),
        ("截止每月25日", "每月25日"),
    ],
)
def test_numerals_and_spacing_are_normalised(variant: str, canonical: str) -> None:
    assert fields(parse_due_rule(variant)) == fields(parse_due_rule(canonical))


@pytest.mark.parametrize(
    ("text", "roll"),
    [
        ("每月25日前", "backward"),
        ("每月25日前（遇非工作日提前）", "backward"),
        ("每月25日前（遇节假日顺延）", "forward"),
        ("每月25日前(遇节假日顺延)", "forward"),
        ("每月25日，节假日顺延", "forward"),
        ("每月25日,节假日顺延。", "forward"),
        ("每月25日前节假日顺延", "forward"),
        ("每月25日前（遇节假日顺延至下一个工作日）", "forward"),
        ("每月25日（不顺延）", "none"),
        ("每月25日，遇节假日不顺延", "none"),
        ("每月25日（不调整）", "none"),
        ("每月25日（自然日）", "none"),
        ("每月25日前（按自然日，不调整）", "none"),
    ],
)
def test_roll_modifiers(text: str, roll: str) -> None:
    assert parse_due_rule(text).roll == roll


def test_three_roll_modes_on_a_sunday() -> None:
    october = Period.parse("2026-10")  # 25 Oct 2026 is a Sunday
    assert parse_due_rule("每月25日前").due_date(october) == date(2026, 10, 23)
    assert parse_due_rule("每月25日前（遇节假日顺延）").due_date(october) == date(2026, 10, 26)
    assert parse_due_rule("每月25日前（不顺延）").due_date(october) == date(2026, 10, 25)


def test_roll_modes_with_a_holiday_calendar() -> None:
    october, september = Period.parse("2026-10"), Period.parse("2026-09")
    due = {t: parse_due_rule(t) for t in ("每月6日", "每月6日（顺延）", "每月6日（不调整）")}
    # Backward would leave October (1-4 Oct are off too), so it stays in the month and goes forward.
    assert due["每月6日"].due_date(october, NATIONAL_DAY) == date(2026, 10, 8)
    assert due["每月6日（顺延）"].due_date(october, NATIONAL_DAY) == date(2026, 10, 8)
    assert due["每月6日（不调整）"].due_date(october, NATIONAL_DAY) == date(2026, 10, 6)
    assert parse_due_rule("每月9日").due_date(october, NATIONAL_DAY) == date(2026, 10, 9)
    # Saturday 10 Oct and Sunday 20 Sep are worked, so they stand.
    assert parse_due_rule("每月上旬").due_date(october, NATIONAL_DAY) == date(2026, 10, 10)
    assert parse_due_rule("每月中旬").due_date(september, NATIONAL_DAY) == date(2026, 9, 20)
    assert parse_due_rule("每月中旬").due_date(september) == date(2026, 9, 18)
    assert parse_due_rule("每月第1个工作日").due_date(october, NATIONAL_DAY) == date(2026, 10, 8)
    assert parse_due_rule("每月第3个工作日").due_date(october, NATIONAL_DAY) == date(2026, 10, 10)
    assert parse_due_rule("每季度首月第1个工作日").due_date(
        Period.parse("2026-Q4"), NATIONAL_DAY
    ) == date(2026, 10, 8)


def test_backward_roll_stays_in_the_month_when_it_starts_on_a_weekend() -> None:
    # 1 Nov 2026 is a Sunday: a November deadline must not fall on Friday 30 October.
    assert parse_due_rule("每月1日").due_date(Period.parse("2026-11")) == date(2026, 11, 2)
    assert parse_due_rule("每月2日").due_date(Period.parse("2026-08")) == date(2026, 8, 3)


def test_forward_roll_may_pass_the_month_end() -> None:
    rule = parse_due_rule("每月底（遇节假日顺延）")  # 31 Oct 2026 is a Saturday
    assert rule.due_date(Period.parse("2026-10")) == date(2026, 11, 2)


def test_working_day_rules_ignore_roll_modifiers() -> None:
    rule = parse_due_rule("每月最后一个工作日（顺延）")
    assert rule.roll == "backward"
    assert rule.due_date(Period.parse("2026-10")) == date(2026, 10, 30)


def test_nth_working_day_beyond_a_short_month_takes_its_last_working_day() -> None:
    # October with the holiday week has 16 working days (incl. Sat 10 Oct).
    rule = parse_due_rule("每月第20个工作日")
    assert rule.due_date(Period.parse("2026-10"), NATIONAL_DAY) == date(2026, 10, 30)
    assert rule.due_date(Period.parse("2026-11")) == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("text", "key", "roll_date", "calendar_date"),
    [
        ("每月31日", "2026-04", date(2026, 4, 30), date(2026, 4, 30)),
        ("每月31日", "2026-02", date(2026, 2, 27), date(2026, 2, 28)),
        ("每月30日", "2026-02", date(2026, 2, 27), date(2026, 2, 28)),
        ("每月29日", "2028-02", date(2028, 2, 29), date(2028, 2, 29)),
        ("每季度末月31日", "2026-Q2", date(2026, 6, 30), date(2026, 6, 30)),
        ("每季度中间月31日", "2026-Q4", date(2026, 11, 30), date(2026, 11, 30)),
        ("每年2月29日", "2026", date(2026, 2, 27), date(2026, 2, 28)),
        ("每年2月29日", "2028", date(2028, 2, 29), date(2028, 2, 29)),
    ],
)
def test_days_past_a_short_month_clamp_to_its_end(
    text: str, key: str, roll_date: date, calendar_date: date
) -> None:
    period = Period.parse(key)
    assert parse_due_rule(text).due_date(period) == roll_date
    assert parse_due_rule(text + "（不顺延）").due_date(period) == calendar_date


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("每月25日前", "每月25日前（遇非工作日提前）"),
        ("每月25日前（遇节假日顺延）", "每月25日前（遇非工作日顺延）"),
        ("每月25日，不顺延", "每月25日前（按自然日，不调整）"),
        ("每月31日", "每月31日前（小月取月末，遇非工作日提前）"),
        ("每月29日", "每月29日前（小月取月末，遇非工作日提前）"),
        ("每月28日", "每月28日前（遇非工作日提前）"),
        ("每季度首月30日", "每季度首月30日前（遇非工作日提前）"),  # Jan/Apr/Jul/Oct have 30
        ("每季度首月31日", "每季度首月31日前（小月取月末，遇非工作日提前）"),  # April
        ("每季度末月31日", "每季度末月31日前（小月取月末，遇非工作日提前）"),
        ("每年2月29日", "每年2月29日前（平年取2月28日，遇非工作日提前）"),
        ("每月底", "每月底前（遇非工作日提前）"),
        ("每月下旬", "每月底前（遇非工作日提前）"),
        ("每月上旬", "每月10日前（遇非工作日提前）"),
        ("每月最后一个工作日", "每月最后一个工作日"),
        ("每月第三个工作日", "每月第3个工作日"),
        ("每季末", "每季度末前（遇非工作日提前）"),
        ("每季度最后一个工作日", "每季度最后一个工作日"),
        ("每季度第2个工作日", "每季度首月第2个工作日"),
        ("每季度第二个月15日", "每季度中间月15日前（遇非工作日提前）"),
        ("每年年底", "每年12月底前（遇非工作日提前）"),
        ("每年年中", "每年6月底前（遇非工作日提前）"),
        ("2026-03-31", "2026年3月31日前（遇非工作日提前）"),
    ],
)
def test_describe(text: str, description: str) -> None:
    rule = parse_due_rule(text)
    assert rule.describe() == description
    assert fields(parse_due_rule(description)) == fields(rule)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["为空", "empty"]),
        ("   \u3000", ["为空"]),
        ("每月廿五", ["无法识别", "每月廿五", "每月25日前", "每季度末月20日", "unrecognised"]),
        ("每周一", ["无法识别", "每周一"]),
        ("每月25日前（随便）", ["无法识别"]),
        ("每月32日", ["日期不存在", "32日", "no such date"]),
        ("每月0日", ["日期不存在", "0日"]),
        ("每年2月30日", ["日期不存在", "2月没有30日"]),
        ("每年4月31日", ["日期不存在", "4月没有31日"]),
        ("2026年2月30日", ["日期不存在", "2026年2月没有30日"]),
        ("2026年2月29日", ["日期不存在", "2026年2月没有29日"]),
        ("2026-02-30", ["日期不存在"]),
        ("每年13月1日", ["月份13不存在", "1-12", "no such month"]),
        ("每年0月1日", ["月份0不存在"]),
        ("2026年13月1日", ["月份13不存在"]),
        ("0000年1月1日", ["年份"]),
        ("每月第0个工作日", ["第0个工作日不存在"]),
        ("每月第24个工作日", ["第24个工作日不存在", "23"]),
        ("每季度20日", ["哪个月", "每季度末月20日"]),
        ("每月25日（顺延，不顺延）", ["矛盾"]),
    ],
)
def test_errors_say_what_is_wrong(text: str, fragments: list[str]) -> None:
    with pytest.raises(DueRuleError) as caught:
        parse_due_rule(text)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert message.endswith(")")
    assert " (" in message
    for fragment in fragments:
        assert fragment in message


def test_error_message_quotes_long_or_multiline_text_on_one_line() -> None:
    with pytest.raises(DueRuleError) as caught:
        parse_due_rule("每月\n" + "很长" * 50)
    assert "\n" not in str(caught.value)
    assert "…" in str(caught.value)


def test_due_date_checks_the_period() -> None:
    monthly = parse_due_rule("每月25日")
    with pytest.raises(ValueError, match="季度"):
        parse_due_rule("每季度末").due_date(Period.parse("2026-10"))
    with pytest.raises(ValueError, match="月度"):
        monthly.due_date(None)
    with pytest.raises(ValueError, match="月度"):
        monthly.due_date(Period.parse("2026"))
    once = parse_due_rule("2026年3月31日")
    assert once.due_date(Period.parse("2027-Q1")) == date(2026, 3, 31)  # ignored for once


def test_period_of_once() -> None:
    assert parse_due_rule("2026年3月31日前").period_of_once() == Period("monthly", 2026, 3)
    assert parse_due_rule("2026/11/1").period_of_once().key == "2026-11"
    with pytest.raises(ValueError, match="一次性"):
        parse_due_rule("每月25日").period_of_once()


def test_a_calendar_without_working_days_fails_loudly() -> None:
    with pytest.raises(ValueError, match="工作日"):
        parse_due_rule("每月最后一个工作日").due_date(Period.parse("2026-10"), lambda _: False)
    with pytest.raises(ValueError, match="工作日"):
        parse_due_rule("每月25日").due_date(Period.parse("2026-10"), lambda _: False)


def test_weekday_is_workday() -> None:
    assert weekday_is_workday(date(2026, 11, 30))
    assert weekday_is_workday(date(2026, 10, 23))
    assert not weekday_is_workday(date(2026, 10, 24))
    assert not weekday_is_workday(date(2026, 10, 25))


# --- periods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "label", "first", "last", "next_key", "previous_key"),
    [
        ("2026-11", "2026年11月", date(2026, 11, 1), date(2026, 11, 30), "2026-12", "2026-10"),
        ("2026-12", "2026年12月", date(2026, 12, 1), date(2026, 12, 31), "2027-01", "2026-11"),
        ("2026-01", "2026年1月", date(2026, 1, 1), date(2026, 1, 31), "2026-02", "2025-12"),
        ("2028-02", "2028年2月", date(2028, 2, 1), date(2028, 2, 29), "2028-03", "2028-01"),
        ("2026-Q4", "2026年第四季度", date(2026, 10, 1), date(2026, 12, 31), "2027-Q1", "2026-Q3"),
        ("2026-Q1", "2026年第一季度", date(2026, 1, 1), date(2026, 3, 31), "2026-Q2", "2025-Q4"),
        ("2026-Q2", "2026年第二季度", date(2026, 4, 1), date(2026, 6, 30), "2026-Q3", "2026-Q1"),
        ("2026", "2026年度", date(2026, 1, 1), date(2026, 12, 31), "2027", "2025"),
    ],
)
def test_period_facts(
    key: str, label: str, first: date, last: date, next_key: str, previous_key: str
) -> None:
    period = Period.parse(key)
    assert period.key == key
    assert period.label == label
    assert (period.first_day, period.last_day) == (first, last)
    assert period.next().key == next_key
    assert period.previous().key == previous_key


def test_period_parse_accepts_loose_spellings() -> None:
    assert Period.parse(" 2026-3 ") == Period("monthly", 2026, 3)
    assert Period.parse("2026-q4") == Period("quarterly", 2026, 4)


@pytest.mark.parametrize(
    "key", ["", "2026-13", "2026-00", "2026-Q5", "2026-Q0", "26-11", "2026年11月", "2026-11-01"]
)
def test_period_parse_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="周期"):
        Period.parse(key)


def test_period_constructor_validates() -> None:
    with pytest.raises(ValueError, match="周期"):
        Period("weekly", 2026, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="周期"):
        Period("yearly", 2026, 1)
    with pytest.raises(ValueError, match="周期"):
        Period("quarterly", 2026, 5)


def test_period_containing_and_order() -> None:
    day = date(2026, 11, 30)
    assert Period.containing("monthly", day).key == "2026-11"
    assert Period.containing("quarterly", day).key == "2026-Q4"
    assert Period.containing("yearly", day).key == "2026"
    assert Period.containing("quarterly", date(2026, 4, 1)).key == "2026-Q2"
    assert sorted(Period.parse(k) for k in ("2026-11", "2025-12", "2026-02")) == [
        Period.parse("2025-12"),
        Period.parse("2026-02"),
        Period.parse("2026-11"),
    ]


# --- properties ---------------------------------------------------------------------------

periods = st.one_of(
    st.builds(Period, st.just("monthly"), st.integers(1900, 2200), st.integers(1, 12)),
    st.builds(Period, st.just("quarterly"), st.integers(1900, 2200), st.integers(1, 4)),
    st.builds(Period, st.just("yearly"), st.integers(1900, 2200), st.just(0)),
)
months = st.builds(Period, st.just("monthly"), st.integers(1900, 2200), st.integers(1, 12))
ROLL_TEXT = {"backward": "", "forward": "（遇节假日顺延）", "none": "（不顺延）"}
rolls = st.sampled_from(sorted(ROLL_TEXT))


@given(periods)
def test_period_round_trips(period: Period) -> None:
    assert Period.parse(period.key) == period
    assert period.next().previous() == period
    assert period.previous().next() == period
    assert period.next().first_day == period.last_day + timedelta(days=1)
    assert period.previous() < period < period.next()


@given(periods, st.integers(0, 400))
def test_period_contains_its_days(period: Period, offset: int) -> None:
    day = min(period.first_day + timedelta(days=offset), period.last_day)
    assert Period.containing(period.cadence, day) == period


@given(months, st.integers(1, 31), rolls)
def test_monthly_day_rules_on_the_weekday_calendar(period: Period, day: int, roll: str) -> None:
    """The real property: "none" keeps the (clamped) day; "backward" always stays inside the
    month, moving later only when no working day precedes the day in that month; "forward"
    never moves earlier and may spill past the month end by at most a weekend."""
    rule = parse_due_rule(f"每月{day}日前{ROLL_TEXT[roll]}")
    nominal = period.first_day.replace(day=min(day, period.last_day.day))
    due = rule.due_date(period)
    if roll == "none":
        assert due == nominal
        return
    assert weekday_is_workday(due)
    if roll == "backward":
        assert period.first_day <= due <= period.last_day
        if due > nominal:
            assert not any(
                weekday_is_workday(period.first_day + timedelta(days=i)) for i in range(day)
            )
            assert due - nominal <= timedelta(days=2)
    else:
        assert timedelta(0) <= due - nominal <= timedelta(days=2)


def reference_due(nominal: date, roll: str, is_workday: Callable[[date], bool]) -> date:
    """Brute force: the nearest working day in the allowed direction."""
    if roll == "none" or is_workday(nominal):
        return nominal
    later = next(
        nominal + timedelta(days=i)
        for i in range(1, 100)
        if is_workday(nominal + timedelta(days=i))
    )
    if roll == "forward":
        return later
    earlier = [
        nominal.replace(day=d) for d in range(1, nominal.day) if is_workday(nominal.replace(day=d))
    ]
    return earlier[-1] if earlier else later


@given(
    months,
    st.integers(1, 31),
    rolls,
    st.sets(st.integers(-10, 40), max_size=15),
    st.sets(st.integers(-10, 40), max_size=4),
)
def test_day_rules_against_a_brute_force_reference(
    period: Period, day: int, roll: str, holiday_offsets: set[int], makeup_offsets: set[int]
) -> None:
    holidays = {period.first_day + timedelta(days=i) for i in holiday_offsets}
    makeup = {period.first_day + timedelta(days=i) for i in makeup_offsets}
    is_workday = calendar_with(holidays, makeup)
    nominal = period.first_day.replace(day=min(day, period.last_day.day))
    due = parse_due_rule(f"每月{day}日{ROLL_TEXT[roll]}").due_date(period, is_workday)
    assert due == reference_due(nominal, roll, is_workday)
    if roll != "none":
        assert is_workday(due)


@given(months, st.integers(1, 23), st.sets(st.integers(0, 30), max_size=10))
def test_nth_working_day_counts_working_days(period: Period, n: int, offsets: set[int]) -> None:
    is_workday = calendar_with({period.first_day + timedelta(days=i) for i in offsets})
    days = calendar.monthrange(period.year, period.index)[1]
    workdays = [
        d for d in (period.first_day + timedelta(days=i) for i in range(days)) if is_workday(d)
    ]
    due = parse_due_rule(f"每月第{n}个工作日").due_date(period, is_workday)
    assert due == workdays[min(n, len(workdays)) - 1]
    last = parse_due_rule("每月最后一个工作日").due_date(period, is_workday)
    assert last == workdays[-1]


@given(
    st.sampled_from(
        ["每月{d}日", "每季度首月{d}日", "每季度中间月{d}日", "每季度末月{d}日", "每年{m}月{d}日"]
    ),
    st.integers(1, 12),
    st.integers(1, 28),
    rolls,
    periods,
)
def test_describe_parses_back_and_dates_stay_put(
    template: str, month: int, day: int, roll: str, period: Period
) -> None:
    rule = parse_due_rule(template.format(m=month, d=day) + ROLL_TEXT[roll])
    again = parse_due_rule(rule.describe())
    assert fields(again) == fields(rule)
    if period.cadence == rule.cadence:
        assert again.due_date(period) == rule.due_date(period)
        if roll != "none":
            assert weekday_is_workday(rule.due_date(period))


rule_alphabet = st.sampled_from(
    list("每月季度年日号前底末最后一个工作第上中下旬首初间一二三十廿〇")
    + list("0123456789-/.（）(),，顺延不调整 \u3000")
)


@given(st.one_of(st.text(), st.text(rule_alphabet, max_size=20)))
def test_parse_only_ever_raises_due_rule_error(text: str) -> None:
    try:
        rule = parse_due_rule(text)
    except DueRuleError as error:
        message = str(error)
    else:
        message = rule.describe()
    assert message
    assert "\n" not in message
