"""Schedule expressions: every form's next fire times across National Day and Spring Festival
2026 on the real calendar, month ends, cron, normalisation, errors, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.clock import SHANGHAI
from bot.schedules import ScheduleError, parse_schedule
from bot.workdays import Mark, WorkCalendar

# Pinned to the years published today, so a chinesecalendar release adding 2027 changes nothing.
CAL = WorkCalendar.official().published_through(2026)
NATIONAL_DAY = datetime(2026, 9, 28, 10, 0, tzinfo=SHANGHAI)  # Monday before the holiday
SPRING = datetime(2026, 2, 12, 12, 0, tzinfo=SHANGHAI)  # Thursday before the holiday


def at(*stamps: str) -> list[datetime]:
    return [datetime.fromisoformat(s).replace(tzinfo=SHANGHAI) for s in stamps]


def fires(text: str, after: datetime, count: int = 5) -> list[datetime]:
    return parse_schedule(text).next_fire_times(after, CAL, count)


# 2027's arrangement is not in the calendar: its dates below come from the Monday–Friday fallback.
FORMS = [
    ("每月1日 9:00", "每月1日 9:00", NATIONAL_DAY,
     at("2026-10-01 09:00", "2026-11-01 09:00", "2026-12-01 09:00", "2027-01-01 09:00",
        "2027-02-01 09:00")),  # calendar days: holidays and Sundays included
    ("每周一 8:30", "每周一 8:30", NATIONAL_DAY,
     at("2026-10-05 08:30", "2026-10-12 08:30", "2026-10-19 08:30", "2026-10-26 08:30",
        "2026-11-02 08:30")),  # today's 8:30 is already past
    ("每天 8:00", "每天 8:00", NATIONAL_DAY,
     at("2026-09-29 08:00", "2026-09-30 08:00", "2026-10-01 08:00", "2026-10-02 08:00",
        "2026-10-03 08:00")),
    ("工作日 9:00", "每个工作日 9:00", NATIONAL_DAY,
     at("2026-09-29 09:00", "2026-09-30 09:00", "2026-10-08 09:00", "2026-10-09 09:00",
        "2026-10-10 09:00")),  # 10-10 is the 调休 Saturday
    ("每个工作日 9:00", "每个工作日 9:00", SPRING,
     at("2026-02-13 09:00", "2026-02-14 09:00", "2026-02-24 09:00", "2026-02-25 09:00",
        "2026-02-26 09:00")),  # 02-14 is a 调休 Saturday
    ("每月第一个工作日 9:00", "每月第一个工作日 9:00", NATIONAL_DAY,
     at("2026-10-08 09:00", "2026-11-02 09:00", "2026-12-01 09:00", "2027-01-01 09:00",
        "2027-02-01 09:00")),
    ("每月第一个工作日 9:00", "每月第一个工作日 9:00", SPRING,
     at("2026-03-02 09:00", "2026-04-01 09:00", "2026-05-06 09:00", "2026-06-01 09:00",
        "2026-07-01 09:00")),  # May 1-5 off
    ("每月第3个工作日 10:00", "每月第3个工作日 10:00", NATIONAL_DAY,
     at("2026-10-10 10:00", "2026-11-04 10:00", "2026-12-03 10:00", "2027-01-05 10:00",
        "2027-02-03 10:00")),
    ("每月第三个工作日 10:00", "每月第3个工作日 10:00", SPRING,
     at("2026-03-04 10:00", "2026-04-03 10:00", "2026-05-08 10:00", "2026-06-03 10:00",
        "2026-07-03 10:00")),
    ("每月最后一个工作日 17:00", "每月最后一个工作日 17:00", NATIONAL_DAY,
     at("2026-09-30 17:00", "2026-10-30 17:00", "2026-11-30 17:00", "2026-12-31 17:00",
        "2027-01-29 17:00")),
    ("每月最后一个工作日 17:00", "每月最后一个工作日 17:00", SPRING,
     at("2026-02-28 17:00", "2026-03-31 17:00", "2026-04-30 17:00", "2026-05-29 17:00",
        "2026-06-30 17:00")),  # 02-28 is a 调休 Saturday
    ("每季度首月5日 9:00", "每季度首月5日 9:00", NATIONAL_DAY,
     at("2026-10-05 09:00", "2027-01-05 09:00", "2027-04-05 09:00", "2027-07-05 09:00",
        "2027-10-05 09:00")),
    ("每季度第一个工作日 9:00", "每季度第一个工作日 9:00", NATIONAL_DAY,
     at("2026-10-08 09:00", "2027-01-01 09:00", "2027-04-01 09:00", "2027-07-01 09:00",
        "2027-10-01 09:00")),
    ("每季度第一个工作日 9:00", "每季度第一个工作日 9:00", SPRING,
     at("2026-04-01 09:00", "2026-07-01 09:00", "2026-10-08 09:00", "2027-01-01 09:00",
        "2027-04-01 09:00")),
    ("每季度最后一个工作日 17:00", "每季度最后一个工作日 17:00", SPRING,
     at("2026-03-31 17:00", "2026-06-30 17:00", "2026-09-30 17:00", "2026-12-31 17:00",
        "2027-03-31 17:00")),
    ("每周一、周四 9:00", "每周一、周四 9:00", NATIONAL_DAY,
     at("2026-10-01 09:00", "2026-10-05 09:00", "2026-10-08 09:00", "2026-10-12 09:00",
        "2026-10-15 09:00")),
    ("每周一至周五 17:30", "每周一至周五 17:30", NATIONAL_DAY,
     at("2026-09-28 17:30", "2026-09-29 17:30", "2026-09-30 17:30", "2026-10-01 17:30",
        "2026-10-02 17:30")),  # weekdays by name, not working days
    ("每月1日、15日 9:00", "每月1日、15日 9:00", NATIONAL_DAY,
     at("2026-10-01 09:00", "2026-10-15 09:00", "2026-11-01 09:00", "2026-11-15 09:00",
        "2026-12-01 09:00")),
    ("每月最后一天 18:00", "每月最后一天 18:00", SPRING,
     at("2026-02-28 18:00", "2026-03-31 18:00", "2026-04-30 18:00", "2026-05-31 18:00",
        "2026-06-30 18:00")),
    ("每年12月15日 9:00", "每年12月15日 9:00", SPRING,
     at("2026-12-15 09:00", "2027-12-15 09:00", "2028-12-15 09:00", "2029-12-15 09:00",
        "2030-12-15 09:00")),
    ("30 8 * * 1-5", "cron 30 8 * * 1-5", NATIONAL_DAY,
     at("2026-09-29 08:30", "2026-09-30 08:30", "2026-10-01 08:30", "2026-10-02 08:30",
        "2026-10-05 08:30")),  # cron knows no holidays
    ("每周一及每月15日 9:00", "每周一及每月15日 9:00", NATIONAL_DAY,
     at("2026-10-05 09:00", "2026-10-12 09:00", "2026-10-15 09:00", "2026-10-19 09:00",
        "2026-10-26 09:00")),  # either part's days, in order
    ("每月最后一个工作日和每周五 17:00", "每月最后一个工作日及每周五 17:00", NATIONAL_DAY,
     at("2026-09-30 17:00", "2026-10-02 17:00", "2026-10-09 17:00", "2026-10-16 17:00",
        "2026-10-23 17:00")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "described", "after", "expected"), FORMS)
def test_every_form(text: str, described: str, after: datetime, expected: list[datetime]) -> None:
    spec = parse_schedule(text)
    assert spec.describe() == described
    assert parse_schedule(described) == spec
    assert spec.next_fire_times(after, CAL) == expected
    assert all(t.tzinfo is SHANGHAI for t in spec.next_fire_times(after, CAL))


def test_working_day_forms_follow_the_calendar_and_calendar_forms_do_not() -> None:
    assert parse_schedule("工作日 9:00").uses_workdays
    assert parse_schedule("每月最后一个工作日 17:00").uses_workdays
    assert not parse_schedule("每月1日 9:00").uses_workdays
    assert not parse_schedule("每天 9:00").uses_workdays
    assert not parse_schedule("0 9 * * 1-5").uses_workdays


def test_month_ends_clamp_to_the_last_day() -> None:
    after = datetime(2026, 9, 1, tzinfo=SHANGHAI)
    spec = parse_schedule("每月31日 9:00")
    assert spec.describe() == "每月31日 9:00（小月取月末）"
    assert spec.next_fire_times(after, CAL) == at(
        "2026-09-30 09:00", "2026-10-31 09:00", "2026-11-30 09:00", "2026-12-31 09:00",
        "2027-01-31 09:00",
    )  # fmt: skip
    # cron keeps cron's meaning: months without a 31st are skipped.
    assert fires("0 9 31 * *", after) == at(
        "2026-10-31 09:00", "2026-12-31 09:00", "2027-01-31 09:00", "2027-03-31 09:00",
        "2027-05-31 09:00",
    )  # fmt: skip
    # Two days that clamp to the same day fire once.
    assert fires("每月30日、31日 9:00", datetime(2026, 2, 1, tzinfo=SHANGHAI)) == at(
        "2026-02-28 09:00", "2026-03-30 09:00", "2026-03-31 09:00", "2026-04-30 09:00",
        "2026-05-30 09:00",
    )  # fmt: skip
    assert fires("每月29日 9:00", datetime(2028, 2, 1, tzinfo=SHANGHAI), 1) == at(
        "2028-02-29 09:00"
    )
    assert fires("每年2月29日 9:00", datetime(2026, 1, 1, tzinfo=SHANGHAI), 3) == at(
        "2026-02-28 09:00", "2027-02-28 09:00", "2028-02-29 09:00"
    )
    assert parse_schedule("每年2月29日 9:00").describe() == "每年2月29日 9:00（平年取2月28日）"
    assert parse_schedule("每季度首月31日 9:00").describe() == "每季度首月31日 9:00（小月取月末）"
    assert parse_schedule("每月28日 9:00").describe() == "每月28日 9:00"


def test_nth_working_day_beyond_the_month_takes_its_last_working_day() -> None:
    # February 2026 has 16 working days (Spring Festival).
    feb = datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert fires("每月第20个工作日 9:00", feb, 2) == at("2026-02-28 09:00", "2026-03-27 09:00")


def test_unknown_years_fall_back_and_admin_days_apply() -> None:
    cal = CAL.with_overrides({})
    spec = parse_schedule("每月第一个工作日 9:00")
    jan = datetime(2026, 12, 31, 12, tzinfo=SHANGHAI)
    assert spec.next_fire_times(jan, cal, 1) == at("2027-01-01 09:00")
    admin = cal.with_overrides({date(2027, 1, 1): Mark(False, "元旦")})
    assert spec.next_fire_times(jan, admin, 1) == at("2027-01-04 09:00")


def test_a_day_both_parts_name_fires_once() -> None:
    # 2026-06-15 is a Monday: 每周一 and 每月15日 both name it.
    assert fires("每周一及每月15日 9:00", datetime(2026, 6, 14, 12, tzinfo=SHANGHAI), 3) == at(
        "2026-06-15 09:00", "2026-06-22 09:00", "2026-06-29 09:00"
    )
    assert parse_schedule("每周一、每周一 9:00") == parse_schedule("每周一 9:00")
    assert parse_schedule("9点 每周一和每月15号").describe() == "每周一及每月15日 9:00"


def test_fire_times_are_strictly_after_and_respect_seconds() -> None:
    spec = parse_schedule("每天 9:00")
    exactly = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    assert spec.next_fire_times(exactly, CAL, 1) == at("2026-11-24 09:00")
    just_before = exactly - timedelta(microseconds=1)
    assert spec.next_fire_times(just_before, CAL, 1) == [exactly]
    assert spec.next_fire_times(exactly, CAL, 0) == []


def test_other_time_zones_are_converted_and_naive_refused() -> None:
    after = datetime(2026, 11, 22, 16, 30, tzinfo=UTC)  # 00:30 on the 23rd in Beijing
    assert fires("每天 8:00", after, 1) == at("2026-11-23 08:00")
    with pytest.raises(ValueError, match="naive"):
        parse_schedule("每天 8:00").next_fire_times(datetime(2026, 11, 23), CAL)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [
        ("每星期一 8:30", "每周一 8:30"),
        ("每礼拜一 8:30", "每周一 8:30"),
        ("周一 8:30", "每周一 8:30"),
        ("每周一 08:30", "每周一 8:30"),
        ("每周一 8点半", "每周一 8:30"),
        ("每周一 上午8点30", "每周一 8:30"),
        ("每周一 上午八点半", "每周一 8:30"),
        ("每周１ ８：３０", "每周一 8:30"),
        ("每周一\u30008:30", "每周一 8:30"),
        ("每周一8:30", "每周一 8:30"),
        ("上午8点半 每周一", "每周一 8:30"),
        ("每天 下午5点30", "每天 17:30"),
        ("每天 下午五点半", "每天 17:30"),
        ("每日 下午五点三十分", "每天 17:30"),
        ("每天 17时30分", "每天 17:30"),
        ("每天 中午12点", "每天 12:00"),
        ("每天 中午1点", "每天 13:00"),
        ("每天 凌晨零点", "每天 0:00"),
        ("每天 9点整", "每天 9:00"),
        ("每天 9.30", "每天 9:30"),
        ("每天 9:00。", "每天 9:00"),
        ("工作日 上午9点", "每个工作日 9:00"),
        ("每逢工作日 9:00", "每个工作日 9:00"),
        ("每月第1个工作日 9点", "每月第一个工作日 9:00"),
        ("每个月第一个工作日 上午九点", "每月第一个工作日 9:00"),
        ("每月最后1个工作日 下午5点", "每月最后一个工作日 17:00"),
        ("每月最后工作日 17:00", "每月最后一个工作日 17:00"),
        ("每月1号、15号 9:00", "每月1日、15日 9:00"),
        ("每月1、15日 9:00", "每月1日、15日 9:00"),
        ("每月一日、十五日 九点", "每月1日、15日 9:00"),
        ("每月1日，15日 9:00", "每月1日、15日 9:00"),
        ("每月15日和1日 9:00", "每月1日、15日 9:00"),
        ("每月底 18:00", "每月最后一天 18:00"),
        ("每周一、四 9:00", "每周一、周四 9:00"),
        ("每周四、周一 9:00", "每周一、周四 9:00"),
        ("周一和周四 9点", "每周一、周四 9:00"),
        ("每周日 9:00", "每周日 9:00"),
        ("每周天 9:00", "每周日 9:00"),
        ("每星期日 9:00", "每周日 9:00"),
        ("每周1-5 17:30", "每周一至周五 17:30"),
        ("每季度第一个月5日 9:00", "每季度首月5日 9:00"),
        ("每季首月5号 9:00", "每季度首月5日 9:00"),
        ("每个季度首月五日 9:00", "每季度首月5日 9:00"),
        ("每季度首月第一个工作日 9:00", "每季度第一个工作日 9:00"),
        ("每季度末月最后一个工作日 17:00", "每季度最后一个工作日 17:00"),
        ("每年十二月十五日 9:00", "每年12月15日 9:00"),
        ("cron 30 8 * * 1-5", "30 8 * * 1-5"),
        ("30  8 * * mon-fri", "30 8 * * 1-5"),
        ("３０ ８ ＊ ＊ １-５", "30 8 * * 1-5"),
    ],
)
def test_forms_are_normalised(variant: str, canonical: str) -> None:
    spec = parse_schedule(variant)
    after = datetime(2026, 11, 21, tzinfo=SHANGHAI)
    if spec.cron is None:
        assert spec == parse_schedule(canonical)
    assert spec.next_fire_times(after, CAL) == fires(canonical, after)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("每月32日 9:00", "日程“每月32日 9:00”中的日期不存在：每月没有32日，日期应为1-31"),
        ("每月32日", "每月没有32日"),
        ("每月0日 9:00", "每月没有0日"),
        ("每年2月30日 9:00", "2月没有30日"),
        ("每年13月1日 9:00", "没有13月"),
        ("每周八 9:00", "日程“每周八 9:00”中的星期不存在：没有“周八”，应为周一至周日"),
        ("每周五至周一 9:00", "从前往后写"),
        ("25:00", "日程“25:00”中的时间不存在：没有25点，小时应为0-23"),
        ("每天 25:00", "没有25点"),
        ("每天 9:75", "没有75分"),
        ("每天 上午13点", "没有上午13点"),
        ("", "日程为空"),
        ("   ", "日程为空"),
        ("明天", "无法识别的日程“明天”"),
        ("明天 9:00", "无法识别的日程“明天 9:00”"),
        ("9:00", "没有写哪天执行"),
        ("每月1日", "日程“每月1日”缺少时间"),
        ("每季度5日 9:00", "没有写明是季度的哪个月"),
        ("每月第24个工作日 9:00", "第24个工作日不存在"),
        ("30 25 * * *", "第2段（小时）“25”超出范围0-23"),
        ("30 8 * *", "cron 表达式应为5段"),
        ("0 9 31 2 *", "不会触发"),
        ("0 9 * * 8", "第5段（星期）“8”超出范围0-7"),
        ("0 9 * * funday", "“funday”不是数字"),
        ("0 9 5-1 * *", "范围无效"),
        ("cron 每天", "cron 表达式应为5段"),
    ],
)
def test_errors_name_the_problem_and_show_the_forms(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text)
    message = str(caught.value)
    assert reason in caught.value.reason
    assert message.startswith(caught.value.reason + "；可用写法如 “每天 8:00”")
    assert "“每月最后一个工作日 17:00”" in message and "“30 8 * * 1-5”" in message
    assert message.endswith(")") and " (" in message and "\n" not in message


def test_long_input_is_shortened_in_errors() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("下周" * 40)
    assert "…”" in caught.value.reason and len(caught.value.reason) < 60


schedule_alphabet = st.sampled_from(
    list("每天周星期一二三四五六日月季度首末年第个工作最后半点时分号上下午:：0123456789 *-/,、")
)


@given(st.text() | st.text(schedule_alphabet, max_size=30))
def test_any_input_parses_or_raises_schedule_error(text: str) -> None:
    try:
        spec = parse_schedule(text)
    except ScheduleError as e:
        message = str(e)
    else:
        message = spec.describe()
        assert parse_schedule(message) == spec
        assert len(spec.next_fire_times(datetime(2026, 11, 21, tzinfo=SHANGHAI), CAL, 2)) <= 2
    assert "\n" not in message
