"""调度: a roll-call in each community group, asking the lead unit, and a digest to admins."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import OutboxMessage
from jobs import dispatch, inspect
from jobs.env import JobEnv
from tests.test_job_remind_inspect import at, env  # noqa: F401 (fixture)


async def test_roll_call_once_per_day_and_group(env: JobEnv) -> None:  # noqa: F811
    env.clock.at = at(13, 17, 30)
    await inspect.run(env, at(13, 17, 30))
    env.clock.at = at(16, 9)  # Monday
    assert await dispatch.run(env, at(16, 9))
    env.clock.at = at(16, 11)
    assert await dispatch.run(env, at(16, 11))  # by hand: the day's keys keep it to one each
    async with env.db.begin() as s:
        rows = (
            await s.execute(
                select(OutboxMessage.group_key, OutboxMessage.body).where(
                    OutboxMessage.kind == "dispatch"
                )
            )
        ).all()
    posts = {k: b for k, b in rows}
    assert len(rows) == 9 and set(posts) == {f"g_c{i}" for i in range(1, 9)} | {"g_admins"}
    c5 = posts["g_c5"]
    assert c5["body"].startswith("### 第五党建共同体 工作调度（11月16日）")
    assert "**逾期" in c5["body"] and "交通运输局" in c5["body"]
    assert [m["user_id"] for m in c5["mentions"]] == ["0571616757416616", "0988308855316118"]
    assert "第五党建共同体：应报" in posts["g_admins"]["body"]
