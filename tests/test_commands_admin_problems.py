"""问题新增 and 整改销号: findings recorded for a unit, posted to its group, closed, rechecked."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.models import Person, Problem, Unit
from tests.chat import Chat
from tests.test_commands_admin import admin, audits, queued_mentions


async def _problems(chat: Chat) -> list[Problem]:
    async with chat.ledger() as s:
        return list((await s.scalars(select(Problem).order_by(Problem.id))).all())


async def test_a_problem_is_recorded_and_posted_to_the_unit(chat: Chat) -> None:
    said = await admin(chat, "问题 新增 住建局 支部委员会会议记录不完整 12月31日")
    assert "已登记问题 **1**：住建局 · 支部委员会会议记录不完整" in said.reply
    assert "整改期限：12月31日" in said.reply and "整改销号 1" in said.reply
    [post] = said.posts
    assert "江城市住房和城乡建设局机关党委：问题 **1**" in post
    assert "整改期限：**12月31日**" in post and "整改 1" in post
    assert "@何明亮" in post and "@罗雨欣" in post and "@刘文斌" in post  # liaisons, secretary
    ids = {m["user_id"] for m in await queued_mentions(chat, "problem")}
    assert ids == {"0571616757416616", "0988308855316118", "0406086517397963"}
    [problem] = await _problems(chat)
    async with chat.ledger() as s:
        zjj = await s.scalar(select(Unit.id).where(Unit.key == "zjj"))
        admin_id = await s.scalar(select(Person.id).where(Person.key == "p_admin_li"))
    assert (problem.unit_id, problem.status, problem.created_by) == (zjj, "open", admin_id)
    assert problem.description == "支部委员会会议记录不完整"
    assert problem.deadline == datetime(2026, 12, 31, 23, 59, 59, tzinfo=SHANGHAI)
    assert problem.found_at == chat.clock.now()
    [entry] = await audits(chat, "problem.create")
    assert entry.entity_key == "1" and entry.after is not None
    assert entry.after["status"] == "open" and entry.after["unit_id"] == zjj


@pytest.mark.parametrize(
    ("text", "deadline"),
    [
        ("问题新增 交通运输局 党费收缴台账不全 2026-12-31", date(2026, 12, 31)),
        ("问题新增 交通运输局 党费收缴台账不全 月底", date(2026, 11, 30)),
        ("问题新增 交通运输局 党费收缴台账不全 期限：十二月十日", date(2026, 12, 10)),
        ("问题新增 交通运输局 党费 台账不全 期限 12月10日前", date(2026, 12, 10)),
        ("问题新增　交通运输局　党费收缴台账不全　下周五", date(2026, 11, 13)),
    ],
)
async def test_deadlines_as_people_write_them(chat: Chat, text: str, deadline: date) -> None:
    said = await admin(chat, text)
    assert "已登记问题" in said.reply, said.reply
    [problem] = await _problems(chat)
    assert problem.deadline == datetime.combine(deadline, time(23, 59, 59), SHANGHAI)
    assert "期限" not in problem.description and "台账不全" in problem.description


async def test_problem_refusals(chat: Chat) -> None:
    assert "请依次写上单位、问题描述和整改期限" in (await admin(chat, "问题新增 住建局")).reply
    assert "请依次写上" in (await admin(chat, "问题新增 住建局 12月31日")).reply
    unclear = (await admin(chat, "问题新增 住建局 会议记录不全 尽快")).reply
    assert "看不懂整改期限“尽快”" in unclear and "问题新增 单位 问题描述 整改期限" in unclear
    assert "已经过去了" in (await admin(chat, "问题新增 住建局 会议记录不全 2026-10-01")).reply
    assert "没有找到“火星局”" in (await admin(chat, "问题新增 火星局 会议记录不全 月底")).reply
    assert await _problems(chat) == []


async def test_close_sets_the_recheck_and_tells_the_group(chat: Chat) -> None:
    await admin(chat, "问题新增 自然资源规划局 三会一课记录缺失 12月31日")
    chat.clock.at += timedelta(days=10)
    said = await admin(chat, "整改　销号　1　已补齐会议记录")
    assert "已销号：问题 **1** · 自然资源规划局" in said.reply
    assert "将于 12月12日 回头看" in said.reply
    [post] = said.posts
    assert "已整改销号" in post and "已补齐会议记录" in post and "@范雯雯" in post
    [problem] = await _problems(chat)
    assert problem.status == "closed" and problem.closed_at == chat.clock.now()
    assert problem.recheck_at == chat.clock.now() + timedelta(days=30)
    [entry] = await audits(chat, "problem.close")
    assert entry.before == {"status": "open"} and entry.detail == "已补齐会议记录"
    again = (await admin(chat, "整改销号 1")).reply
    assert "问题 **1** 已于 11月12日 09:00 销号，不能重复销号" in again
    assert "没有编号为 **9** 的问题" in (await admin(chat, "整改销号 9")).reply
    assert "请写上问题编号" in (await admin(chat, "整改销号 全部")).reply
