"""Check-ins in plain words through the DingTalk endpoint: a sentence matched to one open
instance is recorded; several are asked about and the numbered answer records one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.models import Attachment, AuditEntry, PendingChoice, TaskInstance
from tests.chat import C5, STAFF, Chat
from tests.test_commands_proxy import checkins, instance, owe_october, say_with_photos


async def choices(chat: Chat) -> list[PendingChoice]:
    async with chat.ledger() as s:
        return list((await s.scalars(select(PendingChoice))).all())


async def test_one_match_is_recorded(chat: Chat) -> None:
    it = await instance(chat, "zrj", "主题党日")
    reply = await chat.one("p_zrj_ll1", "主题党日已开展，共32人参加。")
    assert f"已记录：**{it.no}** 开展主题党日活动" in reply
    assert "根据您的留言“主题党日已开展，共32人参加”识别" in reply
    assert f"**撤回 {it.no}**" in reply
    [c] = await checkins(chat)
    assert (c.instance_id, c.text, c.on_behalf) == (it.id, "主题党日已开展，共32人参加", False)
    async with chat.ledger() as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert "checkin.create" in actions and "command:-" in actions
    assert "已撤回" in await chat.one("p_zrj_ll1", f"撤回 {it.no}")


async def test_unit_and_month_in_the_sentence(chat: Chat) -> None:
    it = await instance(chat, "zrj", "党小组会")
    for text in ("自然资源规划局 11月党小组会已召开", "十一月份党小组会开完了"):
        reply = await chat.one("p_zrj_sec", text)
        assert f"**{it.no}** 召开党小组会" in reply, text
    assert [c.instance_id for c in await checkins(chat)] == [it.id]  # updated the second time


async def test_the_month_named_picks_the_period(chat: Chat) -> None:
    assert "没有“10月主题党日已开展”" in await chat.one("p_zrj_ll1", "10月主题党日已开展")
    await owe_october(chat)
    october = await instance(chat, "zrj", "主题党日", period="2026-10")
    reply = await chat.one("p_zrj_ll1", "10月主题党日已开展")
    assert f"**{october.no}** 开展主题党日活动（已过截止时间，记为迟报）" in reply
    [c] = await checkins(chat)
    assert c.instance_id == october.id and c.late


async def test_photos_in_the_same_message_are_evidence(chat: Chat) -> None:
    [reply] = await say_with_photos(chat, "p_zrj_ll1", "主题党日已开展", ["dl-n1", "dl-n2"])
    assert "已收到照片 2 张" in reply
    [c] = await checkins(chat)
    async with chat.ledger() as s:
        refs = (await s.scalars(select(Attachment.ref).where(Attachment.checkin_id == c.id))).all()
    assert sorted(refs) == ["dl-n1", "dl-n2"]


async def test_several_matches_are_asked_about(chat: Chat) -> None:
    central = await instance(chat, "zrj", "中心组学习")
    daily = await instance(chat, "zrj", "日常理论学习")
    reply = await chat.one("p_zrj_ll1", "理论学习已开展")
    assert reply.startswith("您指的是哪一项？回复编号：")
    assert f"**{central.no}** 党组（党委）理论学习中心组学习" in reply
    assert f"**{daily.no}** 组织党员日常理论学习" in reply
    assert await checkins(chat) == []
    [choice] = await choices(chat)
    assert (choice.kind, choice.chat_id, choice.user_id) == ("checkin", C5, STAFF["p_zrj_ll1"])
    assert choice.payload["text"] == "理论学习已开展"
    assert choice.expires_at == chat.clock.now() + timedelta(minutes=10)
    async with chat.ledger() as s:
        asked = await s.scalar(select(AuditEntry).where(AuditEntry.action == "choice.ask"))
    assert asked is not None and asked.after == {
        "kind": "checkin",
        "options": choice.payload["ids"],
    }
    answer = await chat.one("p_zrj_ll1", "第2个")
    assert f"已记录：**{daily.no}** 组织党员日常理论学习" in answer
    [c] = await checkins(chat)
    assert (c.instance_id, c.text) == (daily.id, "理论学习已开展")
    assert await choices(chat) == []


async def test_the_answer_may_be_the_listed_number(chat: Chat) -> None:
    central = await instance(chat, "zrj", "中心组学习")
    await chat.one("p_zrj_ll1", "理论学习已开展")
    assert f"**{central.no}**" in await chat.one("p_zrj_ll1", f"{central.no}")
    assert [c.instance_id for c in await checkins(chat)] == [central.id]


async def test_a_wrong_answer_asks_again(chat: Chat) -> None:
    await chat.one("p_zrj_ll1", "理论学习已开展")
    again = await chat.one("p_zrj_ll1", "九")
    assert again.startswith("没有这一项。您指的是哪一项？")
    assert len(await choices(chat)) == 1 and await checkins(chat) == []


async def test_expired_and_foreign_choices_are_ignored(chat: Chat) -> None:
    await chat.one("p_zrj_ll1", "理论学习已开展")
    other = await chat.one("p_zrj_sec", "1")  # someone else in the same group
    assert "没有“1”这条指令" in other
    assert "没有“1”这条指令" in await chat.one("p_zrj_ll1", "1", group=None)  # another chat
    chat.clock.at += timedelta(minutes=10, seconds=1)
    assert "没有“2”这条指令" in await chat.one("p_zrj_ll1", "2")
    assert await checkins(chat) == []
    [expired] = await choices(chat)  # replaced by the person's next question
    assert expired.expires_at < chat.clock.now()


async def test_a_newer_question_replaces_the_older(chat: Chat) -> None:
    await chat.one("p_zrj_ll1", "理论学习已开展")
    await chat.one("p_zrj_ll1", "学习小组和中心组学习已完成")
    [choice] = await choices(chat)
    assert choice.payload["text"] == "学习小组和中心组学习已完成"


async def test_a_lead_names_a_member_unit(chat: Chat) -> None:
    it = await instance(chat, "jtj", "党小组会")
    reply = await chat.one("p_zjj_ll1", "交通运输局 11月党小组会已召开")
    assert f"已代 **交通运输局** 记录：**{it.no}** 召开党小组会" in reply
    assert "请交通运输局联络员发送 **撤回" in reply
    [c] = await checkins(chat)
    assert (c.instance_id, c.on_behalf) == (it.id, True)


async def test_a_member_may_not_name_another_unit(chat: Chat) -> None:
    reply = await chat.one("p_zrj_ll1", "交通运输局党小组会已召开")
    assert "您不能为**交通运输局**报送" in reply
    assert await checkins(chat) == []


async def test_sentences_that_are_no_report(chat: Chat) -> None:
    for text in ("党费怎么交", "主题党日还没开展", "今天天气很好已经出门了", "主题党日"):
        assert "这条指令" in await chat.one("p_zrj_ll1", text), text
    assert "这条指令" in await chat.one("p_admin_li", "主题党日已开展")  # no unit of her own
    assert "这条指令" in await chat.one("stranger", "主题党日已开展")
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(PendingChoice)) == 0
    assert await checkins(chat) == []


async def test_a_reported_task_is_updated_not_mistaken_for_another(chat: Chat) -> None:
    it = await instance(chat, "zrj", "党小组会")
    await chat.one("p_zrj_ll1", f"打卡 {it.no} 已召开")
    # 青年理论学习小组学习 shares 小组 with the sentence: it must not win over the task meant.
    reply = await chat.one("p_zrj_ll1", "党小组会开完了，补充记录")
    assert f"已更新：**{it.no}** 召开党小组会" in reply
    assert [c.instance_id for c in await checkins(chat)] == [it.id]


async def test_accepted_or_excused_tasks_are_not_reported(chat: Chat) -> None:
    it = await instance(chat, "zrj", "主题党日")
    async with chat.ledger() as s:
        row = await s.get(TaskInstance, it.id)
        assert row is not None
        row.status = "accepted"
    reply = await chat.one("p_zrj_ll1", "主题党日已开展")
    assert f"**{it.no}** 开展主题党日活动 已审核通过，无需再报" in reply
    assert await checkins(chat) == []


async def test_the_answer_records_only_what_is_still_open(chat: Chat) -> None:
    central = await instance(chat, "zrj", "中心组学习")
    await chat.one("p_zrj_ll1", "理论学习已开展")
    async with chat.ledger() as s:
        row = await s.get(TaskInstance, central.id)
        assert row is not None
        row.status = "excused"
    reply = await chat.one("p_zrj_ll1", str(central.no))
    assert "现在不能报送了" in reply
    assert await checkins(chat) == []
