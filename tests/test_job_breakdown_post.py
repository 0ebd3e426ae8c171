"""月度分解, a community's post word for word: each of its three sections (all units, the lead
unit, named units) lists its tasks in deadline order."""

from __future__ import annotations

from pathlib import Path

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import load
from bot.render import Renderer
from bot.sync import sync
from jobs import breakdown
from jobs.env import JobEnv
from tests import configs
from tests.test_job_breakdown import DEC_1, posts

EXPECTED = """\
### 第一共同体 2026年12月任务分解
**全体单位**
1. 主题党日 · 12月25日前 · 佐证：照片
2. 报送＊学习＊记录 · 12月31日前
**牵头单位（甲局）共同体职责**
- 联席会议 · 12月18日前
**指定单位**
- 示范点（乙局）· 12月15日前
- 调研（甲局、乙局）· 12月31日前

各单位联络员请 @我 发送 **本月任务** 查看编号，完成后发送 **打卡 编号 说明** 报送，\
照片可随后发送。"""


async def test_a_communitys_post_has_each_section_in_deadline_order(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    data = configs.mini()
    task = data["tasks"][0]
    # Markdown in a title is defused; a later deadline comes later in its section.
    data["tasks"] += [
        {**task, "id": "T04", "title": "报送*学习*记录", "due": "每月最后一日前", "evidence": ""},
        {**task, "id": "T05", "title": "调研", "due": "每月最后一日前", "owners": ["ub", "ua"]},
    ]
    deployment = load(configs.write(tmp_path / "conf", data), env=configs.ENV)
    async with db.begin() as s:
        await sync(s, deployment.spec, clock.now())
    clock.at = DEC_1
    assert await breakdown.run(
        JobEnv(db, deployment, clock, Renderer.for_config(deployment.root)), DEC_1
    )
    assert (await posts(db))["g_c1"] == EXPECTED
