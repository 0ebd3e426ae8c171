"""Materialising the plan into numbered task instances, per unit and period."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.deployment import load
from bot.duerules import Period
from bot.ledger.instances import materialise, unit_instances
from bot.models import PlanTask, TaskInstance, Unit
from bot.sync import sync
from tests.configs import ENV, mini, write


async def ledger(db: Database, tmp_path: Path, clock, data: dict | None = None) -> None:
    async with db.begin() as s:
        await sync(s, load(write(tmp_path, data or mini()), env=ENV).spec, clock.now())


async def test_month_brings_monthly_quarterly_and_yearly_tasks(db, tmp_path, clock) -> None:
    await ledger(db, tmp_path, clock)
    nov = Period.parse("2026-11")
    async with db.begin() as s:
        assert await materialise(s, nov, now=clock.now()) == 4  # T01 ×2, T02 (lead ua), T03 (ub)
        assert await materialise(s, nov, now=clock.now()) == 0  # idempotent
    async with db.begin() as s:
        rows = (
            await s.execute(
                select(
                    Unit.key,
                    PlanTask.key,
                    TaskInstance.period,
                    TaskInstance.no,
                    TaskInstance.due_at,
                )
                .join(Unit, Unit.id == TaskInstance.unit_id)
                .join(PlanTask, PlanTask.id == TaskInstance.task_id)
                .order_by(Unit.key, TaskInstance.no)
            )
        ).all()
    assert [(u, t, p, n) for u, t, p, n, _ in rows] == [
        ("ua", "T01", "2026-11", 1),
        ("ua", "T02", "2026-Q4", 2),
        ("ub", "T01", "2026-11", 1),
        ("ub", "T03", "2026", 2),
    ]
    due = {(u, t): d.astimezone(SHANGHAI) for u, t, _, _, d in rows}
    assert due[("ua", "T01")].date() == date(2026, 11, 25)  # a Wednesday
    assert due[("ua", "T01")].hour == 23  # the whole deadline day counts
    assert due[("ua", "T02")].date() == date(2026, 12, 18)  # 20日 is a Sunday: the Friday before
    assert due[("ub", "T03")].date() == date(2026, 12, 15)


async def test_next_month_continues_the_numbers(db, tmp_path, clock) -> None:
    await ledger(db, tmp_path, clock)
    async with db.begin() as s:
        await materialise(s, Period.parse("2026-11"), now=clock.now())
        assert await materialise(s, Period.parse("2026-12"), now=clock.now()) == 2  # T01 ×2
        ua = await s.scalar(select(Unit.id).where(Unit.key == "ua"))
        listed = await unit_instances(s, ua, Period.parse("2026-12"))
    assert [(it.task.key, it.instance.no) for it in listed] == [("T02", 2), ("T01", 3)]


async def test_removed_units_and_cancelled_tasks_owe_nothing(db, tmp_path, clock) -> None:
    data = mini()
    await ledger(db, tmp_path, clock, data)
    data["units"].pop(1)
    data["communities"][0]["members"] = ["ua"]
    data["tasks"] = data["tasks"][:1]
    await ledger(db, tmp_path, clock, data)
    async with db.begin() as s:
        assert await materialise(s, Period.parse("2026-11"), now=clock.now()) == 1
        assert await s.scalar(select(func.count()).select_from(TaskInstance)) == 1


async def test_holidays_move_deadlines_with_the_calendar(db, tmp_path, clock) -> None:
    data = mini()
    data["tasks"][0]["due"] = "每月1日前"
    await ledger(db, tmp_path, clock, data)
    holidays = {date(2026, 10, 1), date(2026, 10, 2)}
    async with db.begin() as s:
        await materialise(
            s,
            Period.parse("2026-10"),
            now=clock.now(),
            is_workday=lambda d: d.weekday() < 5 and d not in holidays,
        )
        due = await s.scalar(select(TaskInstance.due_at).where(TaskInstance.period == "2026-10"))
    assert due.astimezone(SHANGHAI).date() == date(2026, 10, 5)  # never before the month starts


async def test_a_unit_and_a_lead_joining_mid_month_get_what_they_owe(db, tmp_path, clock) -> None:
    data = mini()
    await ledger(db, tmp_path, clock, data)
    nov = Period.parse("2026-11")
    async with db.begin() as s:
        assert await materialise(s, nov, now=clock.now()) == 4
    data["people"].append({"id": "p_c_ll", "name": "丙联络员", "dingtalk": "staff_c_ll"})
    data["units"].append(
        {"id": "uc", "name": "丙局机关党委", "short": "丙局", "liaisons": ["p_c_ll"]}
    )
    data["communities"][0].update(lead="uc", members=["ua", "ub", "uc"])
    await ledger(db, tmp_path, clock, data)
    async with db.begin() as s:
        # uc: the month's T01 and, as the new lead, the quarter's T02; nobody else anything.
        assert await materialise(s, nov, now=clock.now()) == 2
        assert await materialise(s, nov, now=clock.now()) == 0
        rows = (
            await s.execute(
                select(Unit.key, PlanTask.key, TaskInstance.period, TaskInstance.no)
                .join(Unit, Unit.id == TaskInstance.unit_id)
                .join(PlanTask, PlanTask.id == TaskInstance.task_id)
                .order_by(Unit.key, TaskInstance.no)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ua", "T01", "2026-11", 1),
        ("ua", "T02", "2026-Q4", 2),  # the former lead keeps what it owed
        ("ub", "T01", "2026-11", 1),
        ("ub", "T03", "2026", 2),
        ("uc", "T01", "2026-11", 1),  # deadline order: 25 November, then 18 December
        ("uc", "T02", "2026-Q4", 2),
    ]


async def test_a_unit_named_later_continues_its_own_numbers(db, tmp_path, clock) -> None:
    data = mini()
    await ledger(db, tmp_path, clock, data)
    async with db.begin() as s:
        await materialise(s, Period.parse("2026-11"), now=clock.now())
    data["tasks"][2]["owners"] = ["ub", "ua"]
    await ledger(db, tmp_path, clock, data)
    async with db.begin() as s:
        assert await materialise(s, Period.parse("2026-11"), now=clock.now()) == 1
        ua = await s.scalar(select(Unit.id).where(Unit.key == "ua"))
        listed = await unit_instances(s, ua, Period.parse("2026-11"))
    assert [(it.task.key, it.instance.no) for it in listed] == [
        ("T01", 1),
        ("T03", 3),  # due 15 December: after its T02 (no. 2) in number, before it in time
        ("T02", 2),
    ]
