"""月度分解, the admins' summary: every community when they are few; at a province's scale the
totals and only the communities needing attention, capped, in one robot message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db import Database
from bot.delivery.limits import requests_for
from bot.deployment import load
from bot.messages import Outbound
from bot.models import TaskInstance
from bot.render import Renderer
from bot.sync import sync
from jobs import breakdown
from jobs.env import JobEnv
from tests import configs
from tests.test_job_breakdown import DEC_1, env, posts  # noqa: F401 (fixture)


async def summary_of(data: dict[str, Any], tmp_path: Path, db: Database, clock: FixedClock) -> str:
    deployment = load(configs.write(tmp_path / "conf", data), env=configs.ENV)
    async with db.begin() as s:
        await sync(s, deployment.spec, clock.now())
    clock.at = DEC_1
    job = JobEnv(db, deployment, clock, Renderer.for_config(deployment.root))
    assert await breakdown.run(job, DEC_1)
    return (await posts(db))["g_admins"]


def items(body: str) -> list[str]:
    return [line[2:] for line in body.splitlines() if line.startswith("- ")]


async def test_the_samples_summary_lists_every_community(env: JobEnv) -> None:  # noqa: F811
    assert await breakdown.run(env, DEC_1)
    body = (await posts(env.db))["g_admins"]
    async with env.db.begin() as s:
        created = await s.scalar(select(func.count()).select_from(TaskInstance))
    totals = re.search(r"8 个共同体、58 个单位，本月 (\d+) 项任务、(\d+) 条待报送", body)
    assert totals, body
    rows = items(body)
    assert [r.split("：")[0] for r in rows] == [f"第{n}党建共同体" for n in "一二三四五六七八"]
    assert sum(int(re.findall(r"共 (\d+) 条待报送", r)[0]) for r in rows) == int(totals[2])
    assert "分解已发到 8 个共同体工作群" in body and f"本次新生成 {created} 条任务" in body
    assert "各共同体的工作群、牵头单位和联络员齐全" in body  # the sample lacks nothing
    assert "**统计**" in body and "**看板**" in body and "**导出**" in body


async def test_what_needs_attention_is_named(
    tmp_path: Path, db: Database, clock: FixedClock
) -> None:
    data = configs.mini()
    data["people"].append({"id": "p_d_ll", "name": "丁联络员", "dingtalk": "staff_d_ll"})
    data["units"] += [
        {"id": "uc", "name": "丙局机关党委", "short": "丙局"},  # nobody to check in
        {"id": "ud", "name": "丁局机关党委", "short": "丁局", "liaisons": ["p_d_ll"]},
    ]
    data["communities"].append(  # and no group: its breakdown cannot be posted
        {"id": "c2", "name": "第二共同体", "lead": "uc", "members": ["uc", "ud"]}
    )
    body = await summary_of(data, tmp_path, db, clock)
    assert "2 个共同体、4 个单位" in body and "分解已发到 1 个共同体工作群" in body
    assert items(body) == [
        # December: 主题党日 for all, 联席会议 (the quarter's, due the 20th) for the leads,
        # 示范点 (the year's, due the 15th) for 乙局.
        "第一共同体：2 个单位，3 项任务，共 4 条待报送",
        "第二共同体：2 个单位，2 项任务，共 3 条待报送（未发出）",
        "第二共同体：没有工作群，本月分解未能发出；1 个单位没有联络员（丙局）",
    ]
    assert "**需要关注**" in body and "**绑定群 共同体名称**" in body
    assert set(await posts(db)) == {"g_c1", "g_admins"}


def province(communities: int) -> dict[str, Any]:
    """mini() grown to ``communities`` communities of two units each (c1 is mini's own):
    every 50th has no group, every 20th a unit without liaisons."""
    data = configs.mini()
    for n in range(2, communities + 1):
        units = [f"u{n}a", f"u{n}b"]
        for key in units:
            staffed = not (n % 20 == 0 and key.endswith("b"))
            liaisons = [f"p_{key}"] if staffed else []
            if staffed:
                data["people"].append({"id": f"p_{key}", "name": f"联络员{key}", "dingtalk": key})
            data["units"].append(
                {"id": key, "name": f"第{key}局机关党委", "short": f"{key}局", "liaisons": liaisons}
            )
        community: dict[str, Any] = {
            "id": f"c{n}", "name": f"第{n}共同体", "lead": units[0], "members": units,
        }  # fmt: skip
        if n % 50:
            group = f"g_c{n}"
            community["group"] = group
            data["groups"].append(
                {
                    "id": group,
                    "name": f"第{n}共同体群",
                    "platform": "dingtalk",
                    "chat_id": f"cid{n}==",
                    "channel": {"type": "dingtalk_openapi"},
                }
            )
        data["communities"].append(community)
    return data


async def test_a_provinces_summary_is_one_message_naming_what_needs_attention(
    tmp_path: Path, db: Database, clock: FixedClock
) -> None:
    body = await summary_of(province(300), tmp_path, db, clock)
    assert "300 个共同体、600 个单位，本月 3 项任务、901 条待报送" in body
    assert "分解已发到 294 个共同体工作群" in body
    listed = items(body)
    # 6 without a group (every 50th) first, then units without liaisons (every 20th, 15, of
    # which 3 are among the 6): 18 in all, 10 named.
    assert listed[:6] == [
        f"第{n}共同体：没有工作群，本月分解未能发出"
        + (f"；1 个单位没有联络员（u{n}b局）" if n % 20 == 0 else "")
        for n in range(50, 301, 50)
    ]
    assert listed[6:10] == [f"第{n}共同体：1 个单位没有联络员（u{n}b局）" for n in (20, 40, 60, 80)]
    assert listed[10:] == ["另有 8 个共同体需要关注"]
    assert requests_for(Outbound(body), "wecom_webhook") == 1  # one robot message, not 59
