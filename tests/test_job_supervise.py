"""督办: the escalation ladder over overdue instances and problems, each step once; one post
per unit, step and target, listing the unit's cases."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.models import (
    Escalation,
    NegativeListing,
    OutboxMessage,
    PlanTask,
    Problem,
    TaskInstance,
    Unit,
)
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


async def steps(env: JobEnv) -> dict[int, int]:  # noqa: F811
    async with env.db.begin() as s:
        rows = (
            await s.execute(
                select(Escalation.step, func.count())
                .where(Escalation.subject == "instance")
                .group_by(Escalation.step)
            )
        ).all()
    return dict(rows)


async def test_the_ladder_climbs_with_working_days(env: JobEnv) -> None:  # noqa: F811
    env.clock.at = at(5, 17, 30)  # Thursday: the 4th's deadlines are overdue
    await inspect.run(env, at(5, 17, 30))
    async with env.db.begin() as s:
        first, units = (
            await s.execute(
                select(func.count(), func.count(func.distinct(TaskInstance.unit_id))).where(
                    TaskInstance.status == "overdue"
                )
            )
        ).one()
    assert first
    env.clock.at = at(6, 9, 30)  # Friday: 2 working days late — warnings only
    assert await supervise.run(env, at(6, 9, 30))
    assert await kinds(env) == {"supervise1": units}  # a post per unit
    assert await steps(env) == {1: first}  # a step per instance
    env.clock.at = at(9, 9, 30)  # Monday: 3 working days late — secretaries
    await supervise.run(env, at(9, 9, 30))
    assert await kinds(env) == {"supervise1": units, "supervise2": units}
    assert await steps(env) == {1: first, 2: first}
    env.clock.at = at(13, 9, 30)  # 7 working days late — the admins and the negative list
    await supervise.run(env, at(13, 9, 30))
    taken = await kinds(env)
    assert taken["supervise3"] == units and (await steps(env))[3] == first
    async with env.db.begin() as s:
        listed = (await s.scalars(select(NegativeListing.reason))).all()
        body = await s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "supervise3"))
        group = await s.scalar(
            select(OutboxMessage.group_key).where(OutboxMessage.kind == "supervise3")
        )
    assert len(listed) == units  # one listing per unit and period, however many items
    assert group == "g_admins" and "提醒谈话" in body["body"]
    again = dict(taken)
    env.clock.at = at(16, 9, 30)
    await supervise.run(env, at(16, 9, 30))
    assert {k: v for k, v in (await kinds(env)).items()} == again  # nothing repeats


async def overdue_since(env: JobEnv, day: int, picks: dict[str, int]) -> dict[str, list[str]]:  # noqa: F811
    """Mark the first ``n`` of each unit's (key → n) November instances overdue since the
    ``day``th; per unit, "**no** title" of each, as the posts write them."""
    marked: dict[str, list[str]] = {}
    async with env.db.begin() as s:
        for key, n in picks.items():
            rows = (
                await s.execute(
                    select(TaskInstance, PlanTask.title)
                    .join(Unit, Unit.id == TaskInstance.unit_id)
                    .join(PlanTask, PlanTask.id == TaskInstance.task_id)
                    .where(Unit.key == key, TaskInstance.period == "2026-11")
                    .order_by(TaskInstance.no)
                    .limit(n)
                )
            ).all()
            for instance, _ in rows:
                instance.status, instance.due_at = "overdue", at(day, 23, 59)
            marked[key] = [f"**{i.no}** {title}" for i, title in rows]
    return marked


async def open_problem(env: JobEnv, unit_key: str, *, found: int, due: int) -> None:  # noqa: F811
    """An open problem of the unit, found on the ``found``th, to be rectified by the end of
    the ``due``th (November)."""
    async with env.db.begin() as s:
        unit = await s.scalar(select(Unit.id).where(Unit.key == unit_key))
        s.add(
            Problem(
                unit_id=unit,
                description="支部委员会会议记录不规范",
                deadline=at(due, 23, 59),
                status="open",
                found_at=at(found),
            )
        )


async def test_a_unit_hears_once_per_step_listing_all_its_cases(env: JobEnv) -> None:  # noqa: F811
    marked = await overdue_since(env, 2, {"jtj": 3, "zrj": 1, "slj": 2})
    env.clock.at = at(4, 9, 30)  # Wednesday: 2 working days late, warnings only
    assert await supervise.run(env, at(4, 9, 30))
    async with env.db.begin() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "supervise1")
                .order_by(OutboxMessage.id)
            )
        ).all()
        taken = await s.scalar(select(func.count()).select_from(Escalation))
    assert taken == 6  # every case's step is recorded on its own
    assert len(rows) == 3 and {r.group_key for r in rows} == {"g_c5"}  # 3 units: 3 posts
    by_unit = {
        key: next(r.body for r in rows if r.body["body"].startswith(f"**逾期预警** {short}"))
        for key, short in (("jtj", "交通运输局"), ("zrj", "自然资源规划局"), ("slj", "水利局"))
    }
    jtj = by_unit["jtj"]["body"]
    assert jtj.startswith("**逾期预警** 交通运输局 以下 3 项已过截止日期，尚未完成，请尽快报送：")
    for what in marked["jtj"]:  # all three in the one post: number, title, deadline, lateness
        assert f"- {what}：11月2日截止，已逾期 2 个工作日" in jtj
    assert jtj.count("\n- ") == 3  # and only those
    assert [m["user_id"] for m in by_unit["jtj"]["mentions"]] == ["0369685408830479"]
    zrj = by_unit["zrj"]["body"]  # one case: one sentence
    assert zrj == (
        f"**逾期预警** 自然资源规划局 {marked['zrj'][0]}："
        "11月2日已截止，已逾期 2 个工作日，尚未完成，请尽快报送。"
    )
    assert by_unit["slj"]["body"].count("\n- ") == 2


async def test_each_step_and_target_is_a_post_of_its_own(env: JobEnv) -> None:  # noqa: F811
    marked = await overdue_since(env, 2, {"jtj": 2})
    await open_problem(env, "jtj", found=1, due=2)
    env.clock.at = at(12, 9, 30)  # 8 working days late: all three steps at once
    assert await supervise.run(env, at(12, 9, 30))
    async with env.db.begin() as s:
        rows = (
            await s.execute(
                select(OutboxMessage.kind, OutboxMessage.group_key, OutboxMessage.body).order_by(
                    OutboxMessage.id
                )
            )
        ).all()
        listed = (await s.scalars(select(NegativeListing.reason))).all()
    assert [(k, g) for k, g, _ in rows] == [
        ("supervise1", "g_c5"),
        ("supervise2", "g_c5"),
        ("supervise3", "g_admins"),
    ]
    for _, _, body in rows:  # each names the two tasks and the problem
        assert all(what in body["body"] for what in marked["jtj"])
        assert "问题" in body["body"] and "支部委员会会议记录不规范" in body["body"]
        assert "已逾期 8 个工作日" in body["body"]
    assert "请尽快报送、整改并报告进展" in rows[0][2]["body"]
    secretary = {m["user_id"] for m in rows[1][2]["mentions"]}
    # Its secretary, and the lead unit's (住建局) two liaisons.
    assert secretary == {"0430094165206617", "0571616757416616", "0988308855316118"}
    assert rows[2][2]["mentions"] == []
    assert len(listed) == 1  # the unit once on November's list, with its first case's reason
    assert listed[0].startswith(marked["jtj"][0])


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
    await open_problem(env, "jtj", found=2, due=10)
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


async def test_a_deadline_is_named_by_its_day_in_beijing(env: JobEnv) -> None:  # noqa: F811
    # 00:30 on 3 November in Beijing is still 2 November in UTC, as the database keeps it.
    async with env.db.begin() as s:
        instance = await s.scalar(
            select(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(Unit.key == "zrj", TaskInstance.period == "2026-11")
            .order_by(TaskInstance.no)
            .limit(1)
        )
        assert instance is not None
        instance.status, instance.due_at = "overdue", at(3, 0, 30)
    env.clock.at = at(5, 9, 30)
    assert await supervise.run(env, at(5, 9, 30))
    async with env.db.begin() as s:
        body = await s.scalar(select(OutboxMessage.body).where(OutboxMessage.kind == "supervise1"))
    assert "11月3日已截止，已逾期 2 个工作日" in body["body"]


async def test_a_month_of_misses_climbs_in_parts_one_post_per_unit_and_step(
    env: JobEnv,  # noqa: F811
) -> None:
    # A first start late in the month: every deadline so far missed at once, then 督办 in
    # parts of one community each, a batch of posts being written as each part begins.
    env.clock.at = at(20, 17, 30)
    assert await inspect.run(env, at(20, 17, 30))
    env.clock.at = at(23, 9, 30)
    assert await supervise.run(env, at(23, 9, 30), part=1, posts_at_once=1)
    async with env.db.begin() as s:
        taken = (
            await s.execute(
                select(TaskInstance.unit_id, Escalation.step)
                .join(TaskInstance, TaskInstance.id == Escalation.subject_id)
                .where(Escalation.subject == "instance")
            )
        ).all()
        posts = (
            await s.execute(
                select(OutboxMessage.kind, OutboxMessage.group_key)
                .where(OutboxMessage.kind.like("supervise%"))
                .order_by(OutboxMessage.id)
            )
        ).all()
    assert len({g for _, g in posts}) > 2  # several communities' groups: several parts
    # Every case's steps taken, and a unit hears once per step however the run was cut.
    assert len(taken) > len(posts) == len(set(taken))
    runs = [g for g, _ in groupby(g for k, g in posts if k != "supervise3")]
    assert len(runs) == len(set(runs))  # each group's posts together
