"""回头看: closed problems come back once, after the configured number of days."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.models import OutboxMessage, Problem, Unit
from jobs import recheck
from jobs.env import JobEnv
from tests.test_job_remind_inspect import at, env  # noqa: F401 (fixture)


async def test_closed_problems_are_rechecked_once(env: JobEnv) -> None:  # noqa: F811
    async with env.db.begin() as s:
        unit = await s.scalar(select(Unit.id).where(Unit.key == "jtj"))
        s.add(
            Problem(
                unit_id=unit,
                description="党费收缴不及时",
                deadline=at(10),
                status="closed",
                found_at=at(2),
                closed_at=at(9),
                recheck_at=at(9) + timedelta(days=10),
            )
        )
        s.add(
            Problem(
                unit_id=unit,
                description="尚未销号的问题",
                deadline=at(30),
                status="open",
                found_at=at(2),
            )
        )
    env.clock.at = at(18, 10)  # a day too early
    await recheck.run(env, at(18, 10))
    env.clock.at = at(19, 10)
    await recheck.run(env, at(19, 10))
    env.clock.at = at(20, 10)
    await recheck.run(env, at(20, 10))
    async with env.db.begin() as s:
        rows = (
            await s.execute(
                select(OutboxMessage.group_key, OutboxMessage.body).where(
                    OutboxMessage.kind == "recheck"
                )
            )
        ).all()
    assert len(rows) == 1
    group, body = rows[0]
    assert group == "g_c5" and "党费收缴不及时" in body["body"] and "回头看" in body["body"]
    assert body["mentions"] and body["mentions"][0]["user_id"] == "0369685408830479"
