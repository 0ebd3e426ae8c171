"""提示 and 督查 over the sample configuration in November 2026."""

from __future__ import annotations

from datetime import date, datetime
from itertools import groupby

import pytest
from sqlalchemy import delete, func, select

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.deployment import load
from bot.duerules import Period
from bot.ledger.instances import materialise
from bot.models import AuditEntry, JobRun, OutboxMessage, TaskInstance, Unit
from bot.render import Renderer
from bot.sync import sync
from bot.workdays import WorkCalendar
from jobs import inspect, remind
from jobs.env import JobEnv
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
async def env(db: Database, clock: FixedClock) -> JobEnv:
    deployment = load(SAMPLE_CONFIG, env=SAMPLE_SECRETS)
    async with db.begin() as s:
        await sync(s, deployment.spec, clock.now())
        await materialise(
            s,
            Period.parse("2026-11"),
            now=clock.now(),
            is_workday=WorkCalendar.official().is_workday,
        )
    return JobEnv(db, deployment, clock, Renderer.for_config(deployment.root))


async def reminders(db: Database) -> list[str]:
    async with db.begin() as s:
        return list(
            (
                await s.scalars(
                    select(OutboxMessage.dedupe_key)
                    .where(OutboxMessage.kind == "remind")
                    .order_by(OutboxMessage.id)
                )
            ).all()
        )


async def due_on(db: Database, day: date) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    async with db.begin() as s:
        return (
            await s.scalar(
                select(func.count())
                .select_from(TaskInstance)
                .where(
                    TaskInstance.due_at.between(
                        start, start.replace(hour=23, minute=59, second=59)
                    ),
                    TaskInstance.status == "pending",
                )
            )
            or 0
        )


async def test_reminders_once_ahead_and_once_on_the_day(env: JobEnv) -> None:
    env.clock.at = at(20)  # Friday: three working days ahead reach Wednesday the 25th
    today = await due_on(env.db, date(2026, 11, 20))
    ahead = sum([await due_on(env.db, date(2026, 11, d)) for d in (23, 24, 25)])
    assert await remind.run(env, at(20))
    first = await reminders(env.db)
    assert len(first) == today + ahead and today > 0 and ahead > 0
    assert sum(k.endswith(":ahead") for k in first) == ahead
    env.clock.at = at(20, 10)
    assert await remind.run(env, at(20, 10))  # run again by hand: nothing new
    assert await reminders(env.db) == first
    env.clock.at = at(25)  # Wednesday: the 25th's deadlines are today, and the 30th comes near
    await remind.run(env, at(25))
    new = (await reminders(env.db))[len(first) :]
    later = sum([await due_on(env.db, date(2026, 11, d)) for d in (26, 27, 30)])
    assert len(new) == await due_on(env.db, date(2026, 11, 25)) + later
    assert {k.rsplit(":", 1)[1] for k in new} == {"due", "ahead"}


async def test_reminders_mention_the_liaisons_and_skip_reported_work(env: JobEnv) -> None:
    async with env.db.begin() as s:
        zrj = await s.scalar(select(Unit.id).where(Unit.key == "zrj"))
        done = (
            await s.scalars(
                select(TaskInstance).where(
                    TaskInstance.unit_id == zrj,
                    TaskInstance.due_at <= at(25, 23, 59).replace(second=59),
                )
            )
        ).all()
        for inst in done:
            inst.status = "submitted"
    env.clock.at = at(20)
    await remind.run(env, at(20))
    async with env.db.begin() as s:
        bodies = (
            await s.scalars(select(OutboxMessage.body).where(OutboxMessage.group_key == "g_c5"))
        ).all()
    assert bodies and all("自然资源规划局" not in b["body"] for b in bodies)
    jtj = [b for b in bodies if "交通运输局" in b["body"]]
    assert jtj and jtj[0]["mentions"] == [
        {
            "name": jtj[0]["mentions"][0]["name"],
            "user_id": "0369685408830479",
            "mobile": jtj[0]["mentions"][0]["mobile"],
        }
    ]
    assert "今天（11月20日）截止" in jtj[0]["body"] and "尚未报送" in jtj[0]["body"]
    assert any("还有 3 个工作日" in b["body"] for b in jtj)


async def test_no_reminders_on_a_day_off(env: JobEnv) -> None:
    saturday = at(21)
    env.clock.at = saturday
    assert await remind.run(env, saturday)
    assert await reminders(env.db) == []


async def test_inspect_marks_overdue_once_and_tells_the_admins(env: JobEnv) -> None:
    evening = at(26, 17, 30)  # Thursday: the 25th's deadlines have passed
    env.clock.at = evening
    owed = await due_on(env.db, date(2026, 11, 23)) + await due_on(env.db, date(2026, 11, 25))
    assert await inspect.run(env, evening)
    async with env.db.begin() as s:
        overdue = await s.scalar(
            select(func.count()).select_from(TaskInstance).where(TaskInstance.status == "overdue")
        )
        marks = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "instance.overdue")
        )
        report = await s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "inspect"))
    assert overdue == marks >= owed > 0
    assert (
        report["body"].startswith("### 督查日报 11月26日")
        and f"今日新增逾期 {overdue} 项" in report["body"]
    )
    assert not await inspect.run(env, evening)  # the same occurrence: nothing twice


async def test_inspect_after_a_month_of_misses_works_in_parts_and_lists_thirty(
    env: JobEnv,
) -> None:
    # A first start late in the month: every deadline passed so far is missed at once.
    evening = at(30, 17, 30)
    env.clock.at = evening
    async with env.db.begin() as s:
        owed = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(TaskInstance.due_at < evening, TaskInstance.status == "pending")
        )
    assert owed is not None and owed > 30
    assert await inspect.run(env, evening, part=7)
    async with env.db.begin() as s:
        overdue = await s.scalar(
            select(func.count()).select_from(TaskInstance).where(TaskInstance.status == "overdue")
        )
        marked = await s.scalars(
            select(AuditEntry.entity_key).where(AuditEntry.action == "instance.overdue")
        )
        keys = list(marked)
        report = await s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "inspect"))
    assert overdue == owed and len(keys) == len(set(keys)) == owed
    lines = report["body"].splitlines()
    assert f"今日新增逾期 {owed} 项：" in lines
    assert sum(1 for line in lines if line.startswith("- ") and "截止）" in line) == 30
    assert f"- ……等 {owed} 项，发送 **逾期** 查看全部" in lines


async def test_reminders_queued_in_parts_keep_the_post_order(env: JobEnv) -> None:
    env.clock.at = at(20)
    assert await remind.run(env, at(20), part=3)
    async with env.db.begin() as s:
        queued = (
            await s.execute(
                select(OutboxMessage.dedupe_key, OutboxMessage.group_key)
                .where(OutboxMessage.kind == "remind")
                .order_by(OutboxMessage.id)
            )
        ).all()
        ids = [int(key.split(":")[1]) for key, _ in queued]
        found = {
            i.id: i for i in await s.scalars(select(TaskInstance).where(TaskInstance.id.in_(ids)))
        }
    pending = await due_on(env.db, date(2026, 11, 20))
    later = sum([await due_on(env.db, date(2026, 11, d)) for d in (23, 24, 25)])
    assert len(queued) == pending + later > 3  # more than one part
    # Each group's reminders together, by deadline, unit and number within it.
    runs = [group for group, _ in groupby(g for _, g in queued)]
    assert len(runs) == len(set(runs))
    for group in runs:
        mine = [found[i] for i, (_, g) in zip(ids, queued, strict=True) if g == group]
        assert mine == sorted(mine, key=lambda i: (i.due_at, i.unit_id, i.no))


async def test_a_run_that_died_part_way_is_completed_without_doubles(env: JobEnv) -> None:
    env.clock.at = at(20)
    assert await remind.run(env, at(20), part=4)
    full = await reminders(env.db)
    # As if the run had died after its first parts: their reminders committed, no claim.
    async with env.db.begin() as s:
        await s.execute(delete(JobRun).where(JobRun.job == "remind"))
        await s.execute(
            delete(OutboxMessage).where(OutboxMessage.dedupe_key.in_(full[len(full) // 2 :]))
        )
    assert await remind.run(env, at(20), part=4)  # the catch-up runs it again
    assert sorted(await reminders(env.db)) == sorted(full)
    assert not await remind.run(env, at(20), part=4)  # claimed now: a third run does nothing
    async with env.db.begin() as s:
        detail = await s.scalar(select(JobRun.detail).where(JobRun.job == "remind"))
    assert detail == f"{len(full) - len(full) // 2} reminders of {len(full)} due"
