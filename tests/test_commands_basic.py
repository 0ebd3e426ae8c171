"""帮助, 我, 本月任务, 打卡, 撤回 through the DingTalk endpoint, replies read from the fake."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.models import AuditEntry, CheckIn, TaskInstance, Unit
from tests.chat import Chat


async def instance_no(chat: Chat, unit: str, title_part: str) -> int:
    from bot.models import PlanTask

    async with chat.ledger() as s:
        no = await s.scalar(
            select(TaskInstance.no)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(
                Unit.key == unit,
                PlanTask.title.contains(title_part),
                TaskInstance.period == "2026-11",
            )
        )
    assert no is not None
    return no


async def test_help_lists_what_a_liaison_can_do(chat: Chat) -> None:
    reply = await chat.one("p_zrj_ll1", "帮助")
    assert "打卡" in reply and "本月任务" in reply
    assert "**审核**" not in reply  # admin commands are not shown to workers
    detail = await chat.one("p_zrj_ll1", "help 打卡")
    assert "打卡 编号 说明" in detail


async def test_me_and_strangers(chat: Chat) -> None:
    assert "自然资源和规划局" in await chat.one("p_zrj_ll1", "我")
    assert "共同体牵头单位" in await chat.one("p_zjj_ll1", "我是谁")
    assert "申请绑定" in await chat.one("stranger", "我")


async def test_tasks_lists_numbered_instances_with_deadlines(chat: Chat) -> None:
    reply = await chat.one("p_zrj_ll1", "本月任务")
    assert reply.startswith("### 2026年11月任务")
    assert "未报送" in reply and "11月" in reply
    no = await instance_no(chat, "zrj", "主题党日")
    assert f"**{no}**" in reply


async def test_checkin_records_updates_and_marks_late(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "主题党日")
    reply = await chat.one("p_zrj_ll1", f"打卡　{no}　已开展11月主题党日活动。")  # full-width
    assert f"已记录：**{no}**" in reply
    again = await chat.one("p_zrj_ll1", f"报送{no} 补充：共32人参加")
    assert f"已更新：**{no}**" in again
    async with chat.ledger() as s:
        rows = (await s.scalars(select(CheckIn))).all()
        assert [(c.text, c.late) for c in rows] == [("补充:共32人参加", False)]  # widths folded
        inst = await s.scalar(select(TaskInstance).where(TaskInstance.id == rows[0].instance_id))
        assert inst.status == "submitted"
        actions = (
            await s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.like("checkin.%"))
                .order_by(AuditEntry.id)
            )
        ).all()
        assert actions == ["checkin.create", "checkin.update"]
    chat.clock.at += timedelta(days=60)  # long past the deadline
    late = await chat.one("p_zrj_ll1", f"打卡 {no} 再补一张照片说明")
    assert "迟报" in late


async def test_photos_after_a_checkin_become_its_evidence(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "主题党日")
    await chat.one("p_zrj_ll1", f"打卡 {no} 已开展")
    reply = await chat.one("p_zrj_ll1", "", picture="dl-photo-1")
    assert "1 张照片" in reply
    from bot.models import Attachment

    async with chat.ledger() as s:
        assert (await s.scalars(select(Attachment.ref))).all() == ["dl-photo-1"]


async def test_withdraw_only_before_review(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "主题党日")
    await chat.one("p_zrj_ll1", f"打卡 {no} 已开展")
    assert "已撤回" in await chat.one("p_zrj_ll1", f"撤回 {no}")
    assert "没有待审核的报送" in await chat.one("p_zrj_ll1", f"撤回 {no}")
    async with chat.ledger() as s:
        status = await s.scalar(select(TaskInstance.status).where(TaskInstance.no == no))
    assert status == "pending"


async def test_mistakes_get_the_right_form(chat: Chat) -> None:
    assert "请写上要报送的任务编号" in await chat.one("p_zrj_ll1", "打卡 已经做完了")
    assert "没有找到本单位编号为 **999**" in await chat.one("p_zrj_ll1", "打卡 999 完成")
    unknown = await chat.one("p_zrj_ll1", "签到 3 完成")
    assert "没有“签到”这条指令" in unknown and "打卡" in unknown
    assert "看不懂月份" in await chat.one("p_zrj_ll1", "本月任务 下下下月")


async def test_strangers_and_refusals_are_audited(chat: Chat) -> None:
    assert "申请绑定" in await chat.one("stranger", "打卡 1 完成")
    async with chat.ledger() as s:
        refused = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("refused:%")))
        ).all()
    assert refused == ["refused:打卡"]
