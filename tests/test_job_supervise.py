"""督办: the escalation ladder over overdue instances and problems, each step once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.models import Escalation, NegativeListing, OutboxMessage, Problem, TaskInstance, Unit
from jobs import inspect, supervise
from jobs.env import JobEnv
from tests.test_job_remind_inspect import at, env  # noqa: F401 (fixture)


async def kinds(env: JobEnv) -> dict[str, int]:  # noqa: F811
    async with env.db.begin() as s:
        rows = (
            await s.execute(
                select(OutboxMessage.kind, func.count())
                .where(OutboxMessage.kind.like("supervise%"))
                .group_by(OutboxMessage.kind)
            )
        ).all()
    return dict(rows)


async def test_the_ladder_climbs_with_working_days(env: JobEnv) -> None:  # noqa: F811
    env.clock.at = at(5, 17, 30)  # Thursday: the 4th's deadlines are overdue
    await inspect.run(env, at(5, 17, 30))
    async with env.db.begin() as s:
        first = await s.scalar(
            select(func.count()).select_from(TaskInstance).where(TaskInstance.status == "overdue")
        )
    assert first
    env.clock.at = at(6, 9, 30)  # Friday: 2 working days late — warnings only
    assert await supervise.run(env, at(6, 9, 30))
    assert await kinds(env) == {"supervise1": first}
    env.clock.at = at(9, 9, 30)  # Monday: 3 working days late — secretaries
    await supervise.run(env, at(9, 9, 30))
    assert await kinds(env) == {"supervise1": first, "supervise2": first}
    env.clock.at = at(13, 9, 30)  # 7 working days late — the admins and the negative list
    await supervise.run(env, at(13, 9, 30))
    steps = await kinds(env)
    assert steps["supervise3"] == first
    async with env.db.begin() as s:
        listed = (await s.scalars(select(NegativeListing.reason))).all()
        units = await s.scalar(
            select(func.count(func.distinct(TaskInstance.unit_id))).where(
                TaskInstance.status == "overdue", TaskInstance.due_at < at(14)
            )
        )
        body = await s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "supervise3"))
        group = await s.scalar(
            select(OutboxMessage.group_key).where(OutboxMessage.kind == "supervise3")
        )
    assert len(listed) == units  # one listing per unit and period, however many items
    assert group == "g_admins" and "提醒谈话" in body["body"]
    again = dict(steps)
    env.clock.at = at(16, 9, 30)
    await supervise.run(env, at(16, 9, 30))
    assert {k: v for k, v in (await kinds(env)).items()} == again  # nothing repeats


async def test_secretary_step_mentions_secretary_and_lead_unit(env: JobEnv) -> None:  # noqa: F811
    env.clock.at = at(5, 17, 30)
    await inspect.run(env, at(5, 17, 30))
    env.clock.at = at(9, 9, 30)
    await supervise.run(env, at(9, 9, 30))
    async with env.db.begin() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage.body).where(
                    OutboxMessage.kind == "supervise2", OutboxMessage.group_key == "g_c5"
                )
            )
        ).all()
    jtj = [b for b in rows if b["body"].startswith("**督办提醒** 交通运输局")]
    assert jtj
    ids = {m["user_id"] for m in jtj[0]["mentions"]}
    assert "0430094165206617" in ids  # 交通运输局's secretary
    assert "0571616757416616" in ids  # 住建局 (the lead unit)'s liaison


async def test_overdue_rectifications_are_chased_too(env: JobEnv) -> None:  # noqa: F811
    async with env.db.begin() as s:
        unit = await s.scalar(select(Unit.id).where(Unit.key == "jtj"))
        s.add(
            Problem(
                unit_id=unit,
                description="支部委员会会议记录不规范",
                deadline=at(10, 23, 59),
                status="open",
                found_at=at(2),
            )
        )
    env.clock.at = at(16, 9, 30)
    await supervise.run(env, at(16, 9, 30))
    async with env.db.begin() as s:
        steps = (
            await s.scalars(
                select(Escalation.step)
                .where(Escalation.subject == "problem")
                .order_by(Escalation.step)
            )
        ).all()
        post = await s.scalar(
            select(OutboxMessage.body).where(OutboxMessage.dedupe_key.like("supervise:problem:%:1"))
        )
    assert steps == [1, 2]  # 4 working days late: warning and secretary at once
    assert "支部委员会会议记录不规范" in post["body"] and "整改" in post["body"]


async def test_weekends_take_no_steps(env: JobEnv) -> None:  # noqa: F811
    env.clock.at = at(5, 17, 30)
    await inspect.run(env, at(5, 17, 30))
    saturday = datetime(2026, 11, 7, 9, 30, tzinfo=SHANGHAI)
    env.clock.at = saturday
    assert await supervise.run(env, saturday)
    assert await kinds(env) == {}
    env.clock.at = saturday + timedelta(days=2)
    await supervise.run(env, saturday + timedelta(days=2))
    assert await kinds(env)
