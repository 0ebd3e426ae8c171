"""待审核, 审核通过, 审核退回 and 免报, from the admin's chat to the community group."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.models import CheckIn, Person, Review, TaskInstance, Unit
from tests.chat import Chat
from tests.test_commands_admin import admin, audits, checked_in, instance_no, queued_mentions


async def test_queue_lists_reports_oldest_first(chat: Chat) -> None:
    first = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展**11月**主题党日 @所有人")
    await chat.say("p_zrj_ll1", "", picture="dl-photo-1")
    chat.clock.at += timedelta(hours=2)
    second = await checked_in(chat, "p_jtj_ll1", "jtj", "党费", "党费已收缴")
    reply = (await admin(chat, "待审核")).reply
    assert reply.startswith("### 待审核报送：2 条")
    assert reply.index(f"审核编号 **{first}**") < reply.index(f"审核编号 **{second}**")
    zrj_no = await instance_no(chat, "zrj", "主题党日")
    assert f"自然资源规划局 · {zrj_no}号任务 开展主题党日活动" in reply
    assert "佐证 1 件" in reply and "佐证 0 件" in reply
    assert "11月2日 09:00 报送" in reply and "11月2日 11:00 报送" in reply
    # The liaison's text is shown inert: no bold, no @所有人.
    assert "＊＊11月＊＊" in reply and "＠所有人" in reply and "@所有人" not in reply


async def test_queue_filters_by_unit_or_community(chat: Chat) -> None:
    await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    await checked_in(chat, "p_jtj_ll1", "jtj", "党费", "已收缴")
    by_unit = (await admin(chat, "待审核 交通运输局")).reply
    assert "（交通运输局）：1 条" in by_unit and "自然资源规划局" not in by_unit
    by_community = (await admin(chat, "待审核 第五")).reply
    assert "（第五党建共同体）：2 条" in by_community
    assert "（住建局）：0 条" in (await admin(chat, "待审核 住建局")).reply
    assert "没有找到“火星局”" in (await admin(chat, "待审核 火星局")).reply


async def test_queue_shows_twenty_and_counts_the_rest(chat: Chat) -> None:
    reply = await chat.one("p_zrj_ll1", "打卡 1-22 已完成")
    assert reply.count("已记录") == 22
    listed = (await admin(chat, "待审核")).reply
    assert listed.count("审核编号 **") == 20
    assert "还有 2 条未列出" in listed


async def test_late_reports_are_flagged(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "党费")  # due on 11月13日
    chat.clock.at += timedelta(days=20)
    await chat.say("p_zrj_ll1", f"打卡 {no} 补报")
    assert "（迟报）" in (await admin(chat, "待审核")).reply


async def test_accept_several_at_once_and_tell_the_group(chat: Chat) -> None:
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    b = await checked_in(chat, "p_jtj_ll1", "jtj", "党费", "已收缴")
    said = await admin(chat, f"审核　通过　{a}、{b}")  # full-width blanks, 、 between
    assert f"已通过：审核编号 **{a}**" in said.reply and f"已通过：审核编号 **{b}**" in said.reply
    assert "已通知第五党建共同体工作群" in said.reply
    assert len(said.posts) == 1  # one post for both units of the community
    post = said.posts[0]
    assert "报送审核通过" in post and "自然资源规划局" in post and "交通运输局" in post
    assert "@范雯雯" in post and "@韩春梅" in post
    mentions = await queued_mentions(chat, "review")
    assert {m["user_id"] for m in mentions} == {"0343958336287704", "0369685408830479"}
    async with chat.ledger() as s:
        admin_id = await s.scalar(select(Person.id).where(Person.key == "p_admin_li"))
        reviews = (await s.scalars(select(Review).order_by(Review.id))).all()
        assert [(r.checkin_id, r.decision, r.reviewer_id) for r in reviews] == [
            (a, "accept", admin_id),
            (b, "accept", admin_id),
        ]
        checkins = (await s.scalars(select(CheckIn).order_by(CheckIn.id))).all()
        assert [c.status for c in checkins] == ["accepted", "accepted"]
        statuses = (
            await s.scalars(
                select(TaskInstance.status).where(
                    TaskInstance.id.in_([c.instance_id for c in checkins])
                )
            )
        ).all()
        assert list(statuses) == ["accepted", "accepted"]
    entries = await audits(chat, "review.")
    assert [(e.action, e.entity_key) for e in entries] == [
        ("review.accept", str(a)),
        ("review.accept", str(b)),
    ]
    assert entries[0].before == {"checkin": "submitted", "instance": "submitted"}
    assert entries[0].after == {"checkin": "accepted", "instance": "accepted", "reason": ""}
    assert entries[0].actor == "p_admin_li"
    # The liaison now sees it as passed.
    zrj_no = await instance_no(chat, "zrj", "主题党日")
    tasks = await chat.one("p_zrj_ll1", "本月任务")
    line = next(x for x in tasks.splitlines() if f"**{zrj_no}**" in x)
    assert "已通过" in line


async def test_accept_refusals_say_why(chat: Chat) -> None:
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    await admin(chat, f"审核通过 {a}")
    again = (await admin(chat, f"审核通过 {a}")).reply
    assert f"审核编号 **{a}** 已由李慧敏于 11月2日 09:00 审核通过" in again
    assert "没有审核编号为 **99** 的报送" in (await admin(chat, "审核通过 99")).reply
    b = await checked_in(chat, "p_jtj_ll1", "jtj", "党费", "已收缴")
    no = await instance_no(chat, "jtj", "党费")
    await chat.say("p_jtj_ll1", f"撤回 {no}")
    assert "已被单位撤回" in (await admin(chat, f"审核通过 {b}")).reply
    assert "请写上审核编号" in (await admin(chat, "审核通过 全部")).reply
    # Part done, part refused: the reply tells both.
    c = await checked_in(chat, "p_zjj_ll1", "zjj", "党费", "已收缴")
    mixed = await admin(chat, f"审核通过 {c} 99")
    assert f"已通过：审核编号 **{c}**" in mixed.reply and "未处理" in mixed.reply
    assert "没有审核编号为 **99**" in mixed.reply
    async with chat.ledger() as s:
        assert len((await s.scalars(select(Review))).all()) == 2
    assert [e.action for e in await audits(chat, "refused:")] == ["refused:审核 通过"] * 4


async def test_return_needs_a_reason_and_tells_the_unit(chat: Chat) -> None:
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    no = await instance_no(chat, "zrj", "主题党日")
    assert "请写明退回理由" in (await admin(chat, f"审核退回 {a}")).reply
    said = await admin(chat, f"审核 退回 {a} 3张照片不清楚")
    assert f"已退回：审核编号 **{a}**" in said.reply and "理由：3张照片不清楚" in said.reply
    assert len(said.posts) == 1
    assert f"**{no}** 开展主题党日活动" in said.posts[0]
    assert "已退回：3张照片不清楚，请整改后重新报送" in said.posts[0]
    assert "@范雯雯" in said.posts[0]
    async with chat.ledger() as s:
        review = await s.scalar(select(Review))
        assert review is not None and (review.decision, review.reason) == (
            "return",
            "3张照片不清楚",
        )
        checkin = await s.scalar(select(CheckIn).where(CheckIn.id == a))
        assert checkin is not None and checkin.status == "returned"
        status = await s.scalar(
            select(TaskInstance.status).where(TaskInstance.id == checkin.instance_id)
        )
        assert status == "returned"
    again = (await admin(chat, f"审核退回 {a} 还是不清楚")).reply
    assert "已由李慧敏于 11月2日 09:00 退回，等待单位重新报送" in again
    # The unit reports again: the same review number is back in the queue.
    await chat.say("p_zrj_ll1", f"打卡 {no} 已补充清晰照片")
    assert f"审核编号 **{a}**" in (await admin(chat, "待审核")).reply
    assert "已通过" in (await admin(chat, f"审核通过 {a}")).reply


async def test_excuse_an_instance(chat: Chat) -> None:
    no = await instance_no(chat, "zjj", "党费")
    said = await admin(chat, f"免报 住建局 {no} 已合并到全市集中缴纳")
    assert f"已免报：住建局 **{no}** 按时足额收缴党费" in said.reply
    assert len(said.posts) == 1 and "本期免报" in said.posts[0] and "@何明亮" in said.posts[0]
    async with chat.ledger() as s:
        inst = await s.scalar(
            select(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(Unit.key == "zjj", TaskInstance.no == no)
        )
        assert inst is not None
        assert (inst.status, inst.excused_reason) == ("excused", "已合并到全市集中缴纳")
    [entry] = await audits(chat, "instance.excuse")
    assert entry.before == {"status": "pending", "excused_reason": None}
    assert entry.after == {"status": "excused", "excused_reason": "已合并到全市集中缴纳"}
    assert "已经免报了" in (await admin(chat, f"免报 住建局 {no} 再免一次")).reply
    assert "免报" in await chat.one("p_zjj_ll1", "本月任务")


async def test_excuse_refusals(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "主题党日")
    assert "请写明免报理由" in (await admin(chat, f"免报 自然资源规划局 {no}")).reply
    assert "请写上单位和任务编号" in (await admin(chat, "免报 自然资源规划局 理由")).reply
    assert "没有找到“火星局”" in (await admin(chat, "免报 火星局 3 理由")).reply
    assert "对应多个单位" in (await admin(chat, "免报 局 3 理由")).reply
    assert "没有编号为 **999** 的任务" in (await admin(chat, "免报 自然资源规划局 999 理由")).reply
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    await admin(chat, f"审核通过 {a}")
    assert "已审核通过，不需要免报" in (await admin(chat, f"免报 自然资源规划局 {no} 理由")).reply


async def test_excused_reports_leave_the_queue(chat: Chat) -> None:
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "主题党日", "已开展")
    no = await instance_no(chat, "zrj", "主题党日")
    await admin(chat, f"免报自然资源规划局{no} 合并开展")  # no blanks at all
    assert "0 条" in (await admin(chat, "待审核")).reply
    assert "对应的任务已免报" in (await admin(chat, f"审核通过 {a}")).reply
