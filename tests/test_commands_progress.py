"""进度 and 逾期 through the DingTalk endpoint: community boards, the committee's summary, and
what is overdue for a unit, a community and everywhere."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from bot.models import TaskInstance, Unit
from tests.chat import Chat
from tests.test_commands_proxy import instance, owe_october, unit_id

C5_UNITS = ["住建局", "自然资源规划局", "交通运输局", "水利局", "城管局", "生态环境局", "国动办"]


async def set_status(chat: Chat, instance_id: int, status: str) -> None:
    async with chat.ledger() as s:
        row = await s.get(TaskInstance, instance_id)
        assert row is not None
        row.status = status


async def owed_in_view(chat: Chat, unit: str, periods: tuple[str, ...]) -> int:
    async with chat.ledger() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(Unit.key == unit, TaskInstance.period.in_(periods))
        )
    return count or 0


def line_of(reply: str, unit: str) -> str:
    return next(line for line in reply.splitlines() if line.startswith(f"- **{unit}**"))


async def test_lead_sees_its_community_board_lead_first(chat: Chat) -> None:
    reply = await chat.one("p_zjj_ll1", "进度")
    assert reply.startswith("### 第五党建共同体 · 2026年11月进度")
    positions = [reply.index(f"**{u}**") for u in C5_UNITS]
    assert positions == sorted(positions)
    assert "**住建局**（牵头）" in reply
    owed = await owed_in_view(chat, "zrj", ("2026-11", "2026-Q4", "2026"))
    assert f"未报送 {owed} · 逾期 0 · 完成率 0%" in line_of(reply, "自然资源规划局")


async def test_counts_follow_the_ledger(chat: Chat) -> None:
    accepted = await instance(chat, "zrj", "主题党日")
    submitted = await instance(chat, "zrj", "党小组会")
    excused = await instance(chat, "zrj", "党费")
    marked = await instance(chat, "zrj", "谈心谈话")
    await set_status(chat, accepted.id, "accepted")
    await set_status(chat, submitted.id, "submitted")
    await set_status(chat, excused.id, "excused")
    await set_status(chat, marked.id, "overdue")  # as supervision marks it
    owed = await owed_in_view(chat, "zrj", ("2026-11", "2026-Q4", "2026")) - 1
    line = line_of(await chat.one("p_zrj_ll1", "进度"), "自然资源规划局")
    rate = round(100 / owed)
    assert line == (
        f"- **自然资源规划局**：已通过 1 · 待审核 1 · 未报送 {owed - 3} · 逾期 1"
        f" · 免报 1 · 完成率 {rate}%"
    )


async def test_past_deadlines_count_as_overdue_before_supervision_runs(chat: Chat) -> None:
    chat.clock.at += timedelta(days=9)  # 11 November: the 10th's deadlines have passed
    async with chat.ledger() as s:
        past = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(
                TaskInstance.unit_id == await unit_id(chat, "zjj"),
                TaskInstance.due_at < chat.clock.now(),
            )
        )
    assert past
    line = line_of(await chat.one("p_zjj_sec", "进度"), "住建局")
    assert f"逾期 {past} ·" in line


async def test_other_months_and_member_views(chat: Chat) -> None:
    await owe_october(chat)
    for text in ("进度 十月", "progress 2026年10月", "进度　10月。"):
        reply = await chat.one("p_zrj_sec", text)
        assert reply.startswith("### 第五党建共同体 · 2026年10月进度"), text
    async with chat.ledger() as s:
        late = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(
                TaskInstance.unit_id == await unit_id(chat, "jtj"),
                TaskInstance.period.in_(("2026-10", "2026-Q4", "2026")),
                TaskInstance.due_at < chat.clock.now(),
            )
        )
    assert late
    assert f"逾期 {late} ·" in line_of(reply, "交通运输局")


async def test_admin_sees_every_community_or_one(chat: Chat) -> None:
    summary = await chat.one("p_admin_li", "进度")
    assert summary.startswith("### 2026年11月各共同体进度")
    assert len(re.findall(r"^- \*\*第.党建共同体\*\*", summary, re.M)) == 8
    for text in ("进度 c5", "进度 第五共同体", "进度 第五党建共同体", "进度 第5共同体 十一月"):
        board = await chat.one("p_admin_li", text)
        assert board.startswith("### 第五党建共同体 · 2026年11月进度"), text
        assert "**公积金中心**" in board


async def test_workers_see_only_their_own_community(chat: Chat) -> None:
    own = await chat.one("p_zrj_ll1", "进度 c5")
    assert own.startswith("### 第五党建共同体 · 2026年11月进度")
    refused = await chat.one("p_zrj_ll1", "进度 第六共同体")
    assert "不能查看第六党建共同体" in refused
    confused = await chat.one("p_zrj_ll1", "进度 明细")
    assert "看不懂“明细”" in confused and "进度 [共同体] [月份]" in confused
    assert "申请绑定" in await chat.one("stranger", "进度")


async def test_overdue_for_my_unit(chat: Chat) -> None:
    await owe_october(chat)
    reply = await chat.one("p_zrj_ll1", "逾期")
    zrj = await unit_id(chat, "zrj")
    async with chat.ledger() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(TaskInstance.unit_id == zrj, TaskInstance.due_at < chat.clock.now())
        )
    assert count and count > 10
    assert f"### 逾期任务 {count} 项（截至11月2日）" in reply
    assert f"**自然资源规划局**：{count} 项" in reply
    assert f"…等 {count} 项" in reply
    assert len(re.findall(r"^- \*\*\d+\*\* ", reply, re.M)) == 10  # the oldest ten
    first = await instance(chat, "zrj", "向机关工委报告上季度", period="2026-Q4")
    due = first.due_at.astimezone(chat.clock.now().tzinfo).date()
    days = (chat.clock.now().date() - due).days
    assert f"**{first.no}** 向机关工委报告上季度党建工作 · {due.month}月{due.day}日截止" in reply
    assert f"逾期 {days} 天" in reply and days > 20
    assert "交通运输局" not in reply


async def test_what_counts_as_overdue(chat: Chat) -> None:
    await owe_october(chat)
    reported = await instance(chat, "zrj", "主题党日", period="2026-10")
    excused = await instance(chat, "zrj", "党小组会", period="2026-10")
    marked = await instance(chat, "zrj", "党费")  # due 15 November, marked overdue anyway
    await set_status(chat, reported.id, "submitted")
    await set_status(chat, excused.id, "excused")
    await set_status(chat, marked.id, "overdue")
    async with chat.ledger() as s:
        past = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(
                TaskInstance.unit_id == reported.unit_id,
                TaskInstance.due_at < chat.clock.now(),
            )
        )
    assert past
    reply = await chat.one("p_zrj_ll1", "逾期")
    assert f"逾期任务 {past - 2 + 1} 项" in reply


async def test_nothing_overdue(chat: Chat) -> None:
    assert "本单位目前没有逾期任务" in await chat.one("p_zrj_ll1", "逾期")
    assert "本共同体目前没有逾期任务" in await chat.one("p_zjj_ll1", "overdue")
    assert "各单位目前没有逾期任务" in await chat.one("p_admin_li", "逾期")


async def test_lead_sees_its_community_overdue(chat: Chat) -> None:
    await owe_october(chat)
    reply = await chat.one("p_zjj_ll1", "逾期")
    for unit in C5_UNITS:
        assert f"**{unit}**：" in reply
    assert "卫健委" not in reply
    assert len(re.findall(r"^- \*\*\d+\*\* ", reply, re.M)) == 3 * 8
    assert "代报 单位 编号 说明" in reply
    assert reply == await chat.one("p_zjj_sec", "逾期")


async def test_admin_sees_overdue_everywhere_by_community(chat: Chat) -> None:
    await owe_october(chat)
    async with chat.ledger() as s:
        total = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(TaskInstance.due_at < chat.clock.now())
        )
    reply = await chat.one("p_admin_li", "逾期")
    assert f"### 逾期任务 {total} 项" in reply
    assert len(re.findall(r"^\*\*第.党建共同体\*\*：\d+ 项", reply, re.M)) == 8
    assert len(re.findall(r"^- \S+ \*\*\d+\*\* ", reply, re.M)) == 5 * 8
    assert "逾期 c5" in reply
    one = await chat.one("p_admin_li", "逾期 第五共同体")
    assert "**住建局**：" in one and "卫健委" not in one
    bad = await chat.one("p_admin_li", "逾期 第九共同体")
    assert "看不懂“第九共同体”" in bad


async def test_workers_name_no_community_for_overdue(chat: Chat) -> None:
    reply = await chat.one("p_zjj_ll1", "逾期 c6")
    assert "“逾期”不需要参数" in reply
    assert "申请绑定" in await chat.one("stranger", "逾期")
