"""The working-day calendar: the real 2024-2026 arrangements (holidays and 调休), the Monday–Friday
fallback for an unpublished year, admin overrides, and their storage with an audit trail."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.models import AuditEntry, CalendarDay
from bot.workdays import Mark, WorkCalendar, load_calendar, set_day

# Pinned to the years published today, so a chinesecalendar release adding 2027 changes nothing.
CAL = WorkCalendar.official().published_through(2026)
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def test_national_day_2026() -> None:
    # 国办发明电〔2025〕7号: 10月1日至7日放假，9月20日（周日）、10月10日（周六）上班.
    assert not any(CAL.is_workday(d) for d in days(date(2026, 10, 1), date(2026, 10, 7)))
    assert CAL.is_workday(date(2026, 9, 20))  # a Sunday
    assert CAL.is_workday(date(2026, 10, 10))  # a Saturday
    assert CAL.is_workday(date(2026, 9, 30))
    assert CAL.is_workday(date(2026, 10, 8))
    assert not CAL.is_workday(date(2026, 10, 11))  # an ordinary Sunday
    # 中秋: Friday 25 September off, the weekend after it as usual.
    assert not CAL.is_workday(date(2026, 9, 25))


def test_spring_festival_2026() -> None:
    # 2月15日（腊月二十八）至23日放假共9天，2月14日（周六）、2月28日（周六）上班.
    assert not any(CAL.is_workday(d) for d in days(date(2026, 2, 15), date(2026, 2, 23)))
    assert CAL.is_workday(date(2026, 2, 14))
    assert CAL.is_workday(date(2026, 2, 28))
    assert CAL.is_workday(date(2026, 2, 13))
    assert CAL.is_workday(date(2026, 2, 24))
    assert len(CAL.workdays_of_month(2026, 2)) == 16


def test_new_year_and_may_day_2026() -> None:
    assert not any(CAL.is_workday(d) for d in days(date(2026, 1, 1), date(2026, 1, 3)))
    assert CAL.is_workday(date(2026, 1, 4))  # a Sunday
    assert not any(CAL.is_workday(d) for d in days(date(2026, 5, 1), date(2026, 5, 5)))
    assert CAL.is_workday(date(2026, 5, 9))  # a Saturday


def test_2025_and_2024() -> None:
    # 2025 春节 1月28日至2月4日, 1月26日（周日）、2月8日（周六）上班.
    assert not any(CAL.is_workday(d) for d in days(date(2025, 1, 28), date(2025, 2, 4)))
    assert CAL.is_workday(date(2025, 1, 26))
    assert CAL.is_workday(date(2025, 2, 8))
    # 2025 国庆中秋 10月1日至8日, 9月28日（周日）、10月11日（周六）上班.
    assert not any(CAL.is_workday(d) for d in days(date(2025, 10, 1), date(2025, 10, 8)))
    assert CAL.is_workday(date(2025, 9, 28))
    assert CAL.is_workday(date(2025, 10, 11))
    # 2024 国庆 10月1日至7日, 9月29日（周日）、10月12日（周六）上班.
    assert not any(CAL.is_workday(d) for d in days(date(2024, 10, 1), date(2024, 10, 7)))
    assert CAL.is_workday(date(2024, 9, 29))
    assert CAL.is_workday(date(2024, 10, 12))


def test_day_status_says_why() -> None:
    assert CAL.status(date(2026, 10, 1)).describe() == "2026-10-01 星期四 休息（国庆节）"
    assert CAL.status(date(2026, 10, 10)).describe() == "2026-10-10 星期六 上班（国庆节调休）"
    assert CAL.status(date(2026, 11, 23)).describe() == "2026-11-23 星期一 上班"
    assert CAL.status(date(2027, 1, 1)).describe() == (
        "2027-01-01 星期五 上班（当年安排未公布，按周一至周五）"
    )


def test_unpublished_year_falls_back_to_monday_to_friday() -> None:
    assert [CAL.known(y) for y in (2024, 2025, 2026)] == [True, True, True]
    assert not CAL.known(2027)  # the package ships 2026 last; admins set 2027 by command
    assert CAL.unknown_years_in(date(2026, 12, 1), date(2027, 1, 31)) == [2027]
    assert CAL.unknown_years_in(date(2026, 1, 1), date(2026, 12, 31)) == []
    assert CAL.unknown_years_in(date(2026, 6, 1), date(2028, 2, 1)) == [2027, 2028]
    week = days(date(2027, 2, 1), date(2027, 2, 7))  # Monday to Sunday
    assert [CAL.is_workday(d) for d in week] == [True] * 5 + [False] * 2
    assert CAL.status(date(2027, 2, 6)).source == "weekday"


def test_the_package_covers_2024_to_2026_at_least() -> None:
    official = WorkCalendar.official()
    assert all(official.known(y) for y in (2024, 2025, 2026))
    assert not official.known(2003)
    earlier = official.published_through(2025)
    assert not earlier.known(2026)
    assert earlier.is_workday(date(2026, 10, 1))  # a Thursday, by the fallback
    assert repr(CAL) == "<WorkCalendar published 2004-2026, 0 overrides>"


def test_walking_across_national_day() -> None:
    assert CAL.next_workday(date(2026, 9, 30)) == date(2026, 10, 8)
    assert CAL.previous_workday(date(2026, 10, 8)) == date(2026, 9, 30)
    assert CAL.next_workday(date(2026, 10, 9)) == date(2026, 10, 10)  # 调休 Saturday
    assert CAL.next_workday(date(2026, 10, 3)) == date(2026, 10, 8)  # from inside the holiday
    assert CAL.previous_workday(date(2026, 10, 12)) == date(2026, 10, 10)


def test_add_workdays_across_a_holiday_week() -> None:
    # "+3 working days" escalation from a Tuesday due date just before National Day.
    assert CAL.add_workdays(date(2026, 9, 29), 3) == date(2026, 10, 9)
    assert CAL.add_workdays(date(2026, 9, 29), 4) == date(2026, 10, 10)
    assert CAL.add_workdays(date(2026, 10, 3), 1) == date(2026, 10, 8)  # from a holiday
    assert CAL.add_workdays(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert CAL.add_workdays(date(2026, 10, 12), -4) == date(2026, 9, 30)
    assert CAL.add_workdays(date(2026, 10, 4), 0) == date(2026, 10, 4)
    # Spring Festival: nine days off between Friday 13 and Tuesday 24 February 2026.
    assert CAL.add_workdays(date(2026, 2, 13), 2) == date(2026, 2, 24)  # 14th is 调休


def test_workdays_between() -> None:
    assert CAL.workdays_between(date(2026, 9, 30), date(2026, 10, 9)) == 2
    assert CAL.workdays_between(date(2026, 10, 9), date(2026, 9, 30)) == -2
    assert CAL.workdays_between(date(2026, 10, 1), date(2026, 10, 7)) == 0
    assert CAL.workdays_between(date(2026, 11, 2), date(2026, 11, 2)) == 0
    assert CAL.workdays_between(date(2026, 11, 2), date(2026, 11, 9)) == 5


def test_month_anchors() -> None:
    assert CAL.nth_workday(2026, 10, 1) == date(2026, 10, 8)
    assert CAL.nth_workday(2026, 10, 3) == date(2026, 10, 10)
    assert CAL.last_workday(2026, 10) == date(2026, 10, 30)
    assert CAL.last_workday(2026, 2) == date(2026, 2, 28)  # a 调休 Saturday
    assert CAL.nth_workday(2026, 2, 16) == date(2026, 2, 28)
    assert CAL.nth_workday(2026, 2, 17) is None
    assert CAL.nth_workday(2026, 5, 1) == date(2026, 5, 6)
    assert CAL.nth_workday(2026, 10, 0) is None


def test_admin_overrides_win() -> None:
    cal = CAL.with_overrides(
        {
            date(2026, 10, 8): Mark(False, "单位统一安排"),
            date(2027, 2, 7): Mark(True),  # a Sunday in an unpublished year
            date(2026, 10, 1): Mark(True),
        }
    )
    assert not cal.is_workday(date(2026, 10, 8))
    assert cal.is_workday(date(2026, 10, 1))
    assert cal.is_workday(date(2027, 2, 7))
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 10, 1)
    assert cal.next_workday(date(2026, 10, 1)) == date(2026, 10, 9)
    assert cal.status(date(2026, 10, 8)).describe() == (
        "2026-10-08 星期四 休息（单位统一安排，管理员设置）"
    )
    assert not cal.known(2027)  # an admin's day does not publish the year
    assert CAL.is_workday(date(2026, 10, 8))  # the original is untouched


def test_a_calendar_without_working_days_is_reported() -> None:
    holiday = {date(2026, 12, 1) + timedelta(days=i): Mark(False) for i in range(120)}
    with pytest.raises(ValueError, match="没有工作日"):
        CAL.with_overrides(holiday).next_workday(date(2026, 11, 30))


workday_steps = st.integers(-40, 40)
any_day = st.dates(date(2024, 1, 1), date(2027, 12, 31))


@given(any_day, workday_steps)
def test_add_workdays_and_workdays_between_are_inverse(day: date, n: int) -> None:
    moved = CAL.add_workdays(day, n)
    assert CAL.workdays_between(day, moved) == n
    if n:
        assert CAL.is_workday(moved)
        assert (moved > day) == (n > 0)


@given(any_day)
def test_next_and_previous_workday_are_the_nearest(day: date) -> None:
    nxt, prev = CAL.next_workday(day), CAL.previous_workday(day)
    assert CAL.is_workday(nxt) and CAL.is_workday(prev)
    assert prev < day < nxt
    assert not any(CAL.is_workday(d) for d in days(day + timedelta(1), nxt - timedelta(1)))
    assert not any(CAL.is_workday(d) for d in days(prev + timedelta(1), day - timedelta(1)))


# -- storage -----------------------------------------------------------------------------------


async def test_set_day_persists_and_wins(db: Database) -> None:
    async with db.begin() as s:
        after = await set_day(s, date(2027, 2, 7), True, "p_admin_wang", NOW, note="春节调休")
    assert after.describe() == "2027-02-07 星期日 上班（春节调休，管理员设置）"
    async with db.begin() as s:
        await set_day(s, date(2026, 10, 8), False, "p_admin_li", NOW)
    async with db.begin() as s:
        cal = await load_calendar(s)
    assert cal.is_workday(date(2027, 2, 7))
    assert not cal.is_workday(date(2026, 10, 8))
    assert cal.is_workday(date(2026, 10, 9))  # published days stay
    assert not cal.is_workday(date(2026, 10, 1))
    async with db.begin() as s:
        row = await s.get(CalendarDay, date(2027, 2, 7))
        assert row is not None
        assert (row.is_workday, row.source, row.note) == (True, "admin", "春节调休")
        assert row.updated_at == NOW


async def test_set_day_audits_before_and_after(db: Database) -> None:
    later = NOW + timedelta(hours=1)
    async with db.begin() as s:
        await set_day(s, date(2026, 10, 10), False, "p_admin_wang", NOW, note="不调休")
    async with db.begin() as s:
        await set_day(s, date(2026, 10, 10), True, "p_admin_li", later)
    async with db.begin() as s:
        entries = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
        cal = await load_calendar(s)
    assert cal.is_workday(date(2026, 10, 10))
    assert [(e.actor, e.action, e.entity, e.entity_key) for e in entries] == [
        ("p_admin_wang", "calendar.set_day", "calendar_day", "2026-10-10"),
        ("p_admin_li", "calendar.set_day", "calendar_day", "2026-10-10"),
    ]
    first, second = entries
    assert first.at == NOW and second.at == later
    assert first.before == {"is_workday": True, "source": "published", "note": "国庆节调休"}
    assert first.after == {"is_workday": False, "source": "admin", "note": "不调休"}
    assert second.before == first.after
    assert second.after == {"is_workday": True, "source": "admin", "note": ""}


async def test_only_admin_rows_are_overrides_and_notes_fit(db: Database) -> None:
    async with db.begin() as s:
        s.add(
            CalendarDay(day=date(2026, 11, 23), is_workday=False, source="import", updated_at=NOW)
        )
        await set_day(s, date(2026, 11, 24), False, "p_admin_wang", NOW, note="长" * 100)
    async with db.begin() as s:
        cal = await load_calendar(s)
        row = await s.get(CalendarDay, date(2026, 11, 24))
    assert cal.is_workday(date(2026, 11, 23))
    assert not cal.is_workday(date(2026, 11, 24))
    assert row is not None and row.note == "长" * 64


async def test_a_rolled_back_change_leaves_nothing(db: Database) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with db.begin() as s:
            await set_day(s, date(2026, 11, 23), False, "p_admin_wang", NOW)
            raise Abort
    async with db.begin() as s:
        assert (await s.scalars(select(AuditEntry))).all() == []
        assert (await load_calendar(s)).is_workday(date(2026, 11, 23))
