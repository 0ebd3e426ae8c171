"""月度分解: materialise the month and post each community its breakdown, exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.deployment import Loaded, load
from bot.duerules import parse_due_rule
from bot.models import JobRun, OutboxMessage, TaskInstance
from bot.render import Renderer
from bot.sync import sync
from jobs import breakdown
from jobs.env import JobEnv
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS

DEC_1 = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)  # a Tuesday: the first working day


@pytest.fixture
async def env(db: Database, clock: FixedClock) -> JobEnv:
    deployment: Loaded = load(SAMPLE_CONFIG, env=SAMPLE_SECRETS)
    async with db.begin() as s:
        await sync(s, deployment.spec, clock.now())
    clock.at = DEC_1
    return JobEnv(db, deployment, clock, Renderer.for_config(deployment.root))


def expected_instances(deployment: Loaded, month: str) -> int:
    """Counted from the configuration, independently of the ledger's code."""
    spec = deployment.spec
    owners = {"all": len(spec.units), "leads": len(spec.communities)}
    total = 0
    for task in spec.tasks:
        n = owners[task.owners] if isinstance(task.owners, str) else len(task.owners)
        if task.cadence == "monthly":
            total += n
        elif task.cadence == "once":
            due = parse_due_rule(task.due).due_date(None)
            total += n if f"{due.year}-{due.month:02d}" == month else 0
    return total


async def posts(db: Database) -> dict[str, str]:
    async with db.begin() as s:
        rows = (
            await s.execute(
                select(OutboxMessage.group_key, OutboxMessage.body).where(
                    OutboxMessage.kind == "breakdown"
                )
            )
        ).all()
    return {key: body["body"] for key, body in rows}


async def test_breakdown_posts_each_community_and_the_admins_once(env: JobEnv) -> None:
    assert await breakdown.run(env, DEC_1) is True
    assert await breakdown.run(env, DEC_1) is False  # the same occurrence never runs twice
    sent = await posts(env.db)
    assert set(sent) == {f"g_c{i}" for i in range(1, 9)} | {"g_admins"}
    c5 = sent["g_c5"]
    assert c5.startswith("### 第五党建共同体 2026年12月任务分解")
    assert "**全体单位**" in c5 and "**牵头单位（住建局）共同体职责**" in c5
    assert "12月" in c5 and "打卡 编号 说明" in c5
    assert "- 第五党建共同体：8 个单位，" in sent["g_admins"]
    assert "built-in" not in sent["g_admins"] and " 项任务，共 " in sent["g_admins"]
    async with env.db.begin() as s:
        made = await s.scalar(
            select(func.count()).select_from(TaskInstance).where(TaskInstance.period == "2026-12")
        )
        runs = (await s.scalars(select(JobRun.detail))).all()
        assert made == expected_instances(env.deployment, "2026-12")
        everything = await s.scalar(select(func.count()).select_from(TaskInstance))
    # December also brings the quarter's and the year's tasks, not materialised before.
    assert runs == [f"{everything} instances; 8 groups"]


async def test_a_later_occurrence_of_the_same_month_posts_nothing_new(env: JobEnv) -> None:
    await breakdown.run(env, DEC_1)
    env.clock.at += timedelta(hours=1)
    assert await breakdown.run(env, DEC_1 + timedelta(hours=1)) is True  # run by hand
    assert len(await posts(env.db)) == 9  # the per-month keys keep it to one post per group


async def test_a_late_run_says_so(env: JobEnv) -> None:
    env.clock.at = DEC_1 + timedelta(hours=5)  # the server was down at 09:00
    await breakdown.run(env, DEC_1)
    assert "（补发）" in (await posts(env.db))["g_c1"]


async def test_quarter_start_months_announce_the_quarters_tasks(env: JobEnv) -> None:
    jan = datetime(2027, 1, 4, 9, 0, tzinfo=SHANGHAI)
    env.clock.at = jan
    await breakdown.run(env, jan)
    c5 = (await posts(env.db))["g_c5"]
    async with env.db.begin() as s:
        quarterly = await s.scalar(
            select(func.count()).select_from(TaskInstance).where(TaskInstance.period == "2027-Q1")
        )
    assert quarterly
    assert "2027年1月任务分解" in c5


async def test_admins_are_warned_once_about_an_unpublished_year(env: JobEnv) -> None:
    # Far enough ahead that no calendar release will have published these years yet.
    dec = datetime(2030, 12, 2, 9, 0, tzinfo=SHANGHAI)
    env.clock.at = dec
    await breakdown.run(env, dec)  # 2030 itself, and January 2031 within sixty days
    jan = datetime(2031, 1, 2, 9, 0, tzinfo=SHANGHAI)
    env.clock.at = jan
    await breakdown.run(env, jan)
    async with env.db.begin() as s:
        keys = (
            await s.scalars(
                select(OutboxMessage.dedupe_key).where(OutboxMessage.kind == "calendar")
            )
        ).all()
    assert sorted(keys) == ["calendar-unknown:2030", "calendar-unknown:2031"]
