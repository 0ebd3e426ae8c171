"""The APScheduler trigger as a pure function (as APScheduler's own tests do), cron semantics
checked against APScheduler's CronTrigger, and properties of every form's fire times."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import assume, given
from hypothesis import strategies as st

from bot.clock import SHANGHAI
from bot.schedules import ScheduleSpec, ScheduleTrigger, parse_schedule
from bot.workdays import Mark, WorkCalendar

# Pinned to the years published today, so a chinesecalendar release adding 2027 changes nothing.
CAL = WorkCalendar.official().published_through(2026)
START = datetime(2026, 9, 28, 10, 0, 0, 123, tzinfo=SHANGHAI)  # Monday before National Day
FORMS = [
    "每月1日 9:00",
    "每周一 8:30",
    "每天 8:00",
    "工作日 9:00",
    "每月第一个工作日 9:00",
    "每月第3个工作日 10:00",
    "每月最后一个工作日 17:00",
    "每季度首月5日 9:00",
    "每季度第一个工作日 9:00",
    "每季度最后一个工作日 17:00",
    "每周一、周四 9:00",
    "每月1日、15日 9:00",
    "每月31日 9:00",
    "每月最后一天 18:00",
    "每年2月29日 9:00",
    "30 8 * * 1-5",
    "*/20 9-10 1,15 * *",
    "0 9 1 * 1",
]


def at(*stamps: str) -> list[datetime]:
    return [datetime.fromisoformat(s).replace(tzinfo=SHANGHAI) for s in stamps]


def chain(trigger: ScheduleTrigger | CronTrigger, start: datetime, count: int) -> list[datetime]:
    """Fire times as a running scheduler asks for them: each call after the previous fire."""
    times, previous, now = [], None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous = now = fire
    return times


@pytest.mark.parametrize("text", FORMS)
def test_trigger_agrees_with_next_fire_times(text: str) -> None:
    spec = parse_schedule(text)
    trigger = spec.trigger(lambda: CAL)
    assert chain(trigger, START, 8) == spec.next_fire_times(START, CAL, 8)
    assert str(trigger) == spec.describe()
    assert spec.describe() in repr(trigger)


def test_trigger_follows_cron_trigger_at_edges() -> None:
    ours = parse_schedule("每天 9:00").trigger(lambda: CAL)
    theirs = CronTrigger(hour=9, minute=0, timezone=SHANGHAI)
    nine = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    # Exactly at a fire time with no previous fire: that time (inclusive).
    assert ours.get_next_fire_time(None, nine) == theirs.get_next_fire_time(None, nine) == nine
    # Called again at the time it just fired: the next one.
    tomorrow = nine + timedelta(days=1)
    assert ours.get_next_fire_time(nine, nine) == theirs.get_next_fire_time(nine, nine) == tomorrow
    # After downtime, the first time after the previous fire, though past: misfires are the
    # scheduler's business (coalesce, misfire_grace_time).
    later = nine + timedelta(days=10)
    assert ours.get_next_fire_time(nine, later) == theirs.get_next_fire_time(nine, later)
    assert ours.get_next_fire_time(nine, later) == tomorrow


def test_trigger_reads_the_calendar_at_each_call() -> None:
    current = {"calendar": CAL}
    trigger = parse_schedule("工作日 9:00").trigger(lambda: current["calendar"])
    assert trigger.get_next_fire_time(None, START) == at("2026-09-29 09:00")[0]
    current["calendar"] = CAL.with_overrides({date(2026, 9, 29): Mark(False, "单位安排")})
    assert trigger.get_next_fire_time(None, START) == at("2026-09-30 09:00")[0]


def test_a_trigger_that_never_fires_again_says_none() -> None:
    # Only an admin calendar without a working day for longer than the search horizon (nine
    # years, for cron's 29 February) can do this.
    off = {date(2026, 10, 1) + timedelta(days=i): Mark(False) for i in range(10 * 366)}
    trigger = parse_schedule("每月第一个工作日 9:00").trigger(lambda: CAL.with_overrides(off))
    assert chain(trigger, START, 3) == []


# -- cron --------------------------------------------------------------------------------------


def test_cron_weekdays_count_from_sunday() -> None:
    mon_fri = parse_schedule("30 8 * * 1-5").next_fire_times(START, CAL)
    assert [t.weekday() for t in mon_fri] == [1, 2, 3, 4, 0]
    sunday = parse_schedule("每周日 9:00").next_fire_times(START, CAL)
    assert parse_schedule("0 9 * * 0").next_fire_times(START, CAL) == sunday
    assert parse_schedule("0 9 * * 7").next_fire_times(START, CAL) == sunday
    assert parse_schedule("0 9 * * sun").next_fire_times(START, CAL) == sunday


def test_cron_day_fields_either_match_when_both_are_restricted() -> None:
    assert parse_schedule("0 9 1 * 1").next_fire_times(START, CAL) == at(
        "2026-10-01 09:00", "2026-10-05 09:00", "2026-10-12 09:00", "2026-10-19 09:00",
        "2026-10-26 09:00",
    )  # fmt: skip
    # A day field starting with "*" counts as unrestricted, so both must match (Vixie cron):
    # the 1st, 11th, 21st or 31st falling on a Monday.
    assert parse_schedule("0 9 */10 * 1").next_fire_times(START, CAL, 3) == at(
        "2026-12-21 09:00", "2027-01-11 09:00", "2027-02-01 09:00"
    )


minutes = st.sampled_from(["0", "30", "*/15", "5,35", "59", "10-20/5"])
hours = st.sampled_from(["9", "8-17", "*/6", "0", "23", "9,17"])
days = st.sampled_from(["*", "1", "15", "1,15", "31", "*/10", "29", "28-31"])
months = st.sampled_from(["*", "1,4,7,10", "2", "*/3", "jan-mar", "12"])
# hypothesis takes naive bounds and attaches the time zone itself.
instants = st.datetimes(
    datetime(2024, 1, 1),  # noqa: DTZ001
    datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(SHANGHAI),
)


@given(minutes, hours, days, months, instants)
def test_cron_matches_apscheduler_without_weekdays(
    minute: str, hour: str, day: str, month: str, start: datetime
) -> None:
    expr = f"{minute} {hour} {day} {month} *"
    assume((day, month) != ("31", "2"))  # refused: it never fires
    ours = parse_schedule(expr).trigger(lambda: CAL)
    theirs = CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=SHANGHAI)
    assert chain(ours, start, 4) == chain(theirs, start, 4)


@given(st.sampled_from(["mon-fri", "sat,sun", "wed", "mon,thu"]), instants)
def test_cron_weekday_names_match_apscheduler(names: str, start: datetime) -> None:
    ours = parse_schedule(f"0 9 * * {names}").trigger(lambda: CAL)
    theirs = CronTrigger(minute=0, hour=9, day_of_week=names, timezone=SHANGHAI)
    assert chain(ours, start, 4) == chain(theirs, start, 4)


@pytest.mark.parametrize(
    ("chinese", "cron"),
    [
        ("每天 8:00", "0 8 * * *"),
        ("每周一 8:30", "30 8 * * 1"),
        ("每周一、周四 9:00", "0 9 * * 1,4"),
        ("每周一至周五 17:30", "30 17 * * 1-5"),
        ("每周日 9:00", "0 9 * * 0"),
        ("每月1日、15日 9:00", "0 9 1,15 * *"),
        ("每季度首月5日 9:00", "0 9 5 1,4,7,10 *"),
        ("每年12月15日 9:00", "0 9 15 12 *"),
    ],
)
@given(start=instants)
def test_simple_forms_equal_their_cron(chinese: str, cron: str, start: datetime) -> None:
    assert parse_schedule(chinese).next_fire_times(start, CAL) == parse_schedule(
        cron
    ).next_fire_times(start, CAL)


# -- properties of every form ------------------------------------------------------------------

all_instants = st.datetimes(
    datetime(2024, 1, 1),  # noqa: DTZ001
    datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(SHANGHAI),
)


@given(st.sampled_from(FORMS), all_instants)
def test_fire_times_increase_and_are_aware_in_shanghai(text: str, after: datetime) -> None:
    spec = parse_schedule(text)
    times = spec.next_fire_times(after, CAL)
    assert len(times) == 5
    assert all(a < b for a, b in zip([after, *times], times, strict=False))
    assert all(t.tzinfo is SHANGHAI and t.utcoffset() == timedelta(hours=8) for t in times)
    assert all(t.second == 0 and t.microsecond == 0 for t in times)
    if spec.cron is None:
        assert all((t.hour, t.minute) == (spec.hour, spec.minute) for t in times)
    if spec.uses_workdays:
        assert all(CAL.is_workday(t.date()) for t in times)


@given(all_instants)
def test_working_days_are_never_skipped(after: datetime) -> None:
    times = parse_schedule("工作日 9:00").next_fire_times(after, CAL, 10)
    for a, b in zip([after, *times], times, strict=False):
        between = [a.date() + timedelta(days=i) for i in range(1, (b.date() - a.date()).days)]
        assert not any(CAL.is_workday(d) for d in between)


hours_minutes = st.tuples(st.integers(0, 23), st.integers(0, 59))
weekday_sets = st.sets(st.integers(0, 6), min_size=1).map(lambda s: tuple(sorted(s)))
day_sets = st.sets(st.integers(1, 31), min_size=1, max_size=4).map(lambda s: tuple(sorted(s)))
specs = st.one_of(
    st.builds(lambda hm: ScheduleSpec("daily", *hm), hours_minutes),
    st.builds(lambda hm: ScheduleSpec("workdays", *hm), hours_minutes),
    st.builds(lambda hm, w: ScheduleSpec("weekly", *hm, weekdays=w), hours_minutes, weekday_sets),
    st.builds(
        lambda hm, d: ScheduleSpec("monthly", *hm, scope="month", days=d), hours_minutes, day_sets
    ),
    st.builds(
        lambda hm, q, d: ScheduleSpec("monthly", *hm, scope="quarter", month=q, days=d),
        hours_minutes,
        st.integers(1, 3),
        day_sets,
    ),
    st.builds(
        lambda hm, n: ScheduleSpec("monthly", *hm, anchor="nth_workday", nth=n),
        hours_minutes,
        st.integers(1, 23),
    ),
    st.builds(
        lambda hm, scope, m, anchor, n: ScheduleSpec(
            "monthly",
            *hm,
            scope=scope,
            month=m,
            anchor=anchor,
            nth=n if anchor == "nth_workday" else 0,
        ),
        hours_minutes,
        st.sampled_from(["quarter", "year"]),
        st.integers(1, 3),
        st.sampled_from(["nth_workday", "last_workday", "last_day"]),
        st.integers(1, 23),
    ),
    st.builds(
        lambda hm, anchor: ScheduleSpec("monthly", *hm, anchor=anchor),
        hours_minutes,
        st.sampled_from(["last_workday", "last_day"]),
    ),
)


@given(specs)
def test_describe_reads_back_as_the_same_schedule(spec: ScheduleSpec) -> None:
    assert parse_schedule(spec.describe()) == spec
