"""A burst of messages handled together: check-ins from many people share one transaction,
yet each is answered, audited and recorded exactly as if it had come alone; one that is
refused, or whose command may not share, is handled alone in its place."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from bot.models import AuditEntry, CheckIn, TaskInstance
from tests.chat import Chat
from tests.test_commands_basic import instance_no


def who_lookups(chat: Chat) -> list[int]:
    """Counts the who-is reads on the app's engine (observed, not altered)."""
    seen = [0]

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "FROM people JOIN identities" in statement:
            seen[0] += 1

    event.listen(chat.deps.db.engine.sync_engine, "before_cursor_execute", note)
    return seen


async def theme_days(chat: Chat) -> tuple[int, int]:
    """The numbers of 住建局's and 交通运输局's 主题党日 this month."""
    return await instance_no(chat, "zjj", "主题党日"), await instance_no(chat, "jtj", "主题党日")


async def audited(chat: Chat, action: str) -> int:
    async with chat.ledger() as s:
        return (
            await s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
            )
            or 0
        )


async def test_a_burst_of_checkins_is_handled_together_and_each_answered(chat: Chat) -> None:
    units = {"p_zjj_ll1": "zjj", "p_zrj_ll1": "zrj", "p_jtj_ll1": "jtj"}
    nos = {who: await instance_no(chat, unit, "主题党日") for who, unit in units.items()}
    lookups = who_lookups(chat)
    replies = await chat.say_together((who, f"打卡 {no} 已开展") for who, no in nos.items())
    assert [r.startswith("已记录") for r in replies] == [True, True, True], replies
    assert [f"**{no}**" in r for r, no in zip(replies, nos.values(), strict=True)] == [True] * 3
    assert lookups[0] == 1  # three people, one read: the burst went as one
    async with chat.ledger() as s:
        statuses = (
            await s.scalars(select(TaskInstance.status).where(TaskInstance.status == "submitted"))
        ).all()
        assert len(statuses) == 3
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 3
    assert await audited(chat, "command:打卡") == 3
    assert await audited(chat, "checkin.create") == 3


async def test_a_refusal_in_a_burst_is_answered_alone_and_the_rest_recorded(chat: Chat) -> None:
    zjj, jtj = await theme_days(chat)
    replies = await chat.say_together(
        [
            ("p_zjj_ll1", f"打卡 {zjj} 已开展"),
            ("p_zrj_ll1", "打卡 999 完成"),
            ("stranger", "打卡 1 完成"),
            ("p_jtj_ll1", f"打卡 {jtj} 已开展"),
        ]
    )
    assert len(replies) == 4, replies
    assert replies[0].startswith("已记录") and f"**{zjj}**" in replies[0]
    assert "没有找到本单位编号为 **999**" in replies[1]
    assert "申请绑定" in replies[2]
    assert replies[3].startswith("已记录") and f"**{jtj}**" in replies[3]
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 2
    assert await audited(chat, "checkin.create") == 2  # nothing twice from the rolled-back try
    assert await audited(chat, "command:打卡") == 2
    assert await audited(chat, "refused:打卡") == 2


async def test_one_persons_messages_in_a_burst_take_effect_in_order(chat: Chat) -> None:
    no = await instance_no(chat, "zrj", "主题党日")
    replies = await chat.say_together(
        [
            ("p_zrj_ll1", f"打卡 {no} 已开展"),
            ("p_zrj_ll1", f"撤回 {no}"),
            ("p_zrj_ll1", f"打卡 {no} 重新报送"),
            ("p_zrj_ll1", f"报送 {no} 补充：共32人参加"),
        ]
    )
    assert [r[:3] for r in replies] == ["已记录", "已撤回", "已记录", "已更新"], replies
    async with chat.ledger() as s:
        rows = (await s.execute(select(CheckIn.status, CheckIn.text).order_by(CheckIn.id))).all()
    assert [tuple(r) for r in rows] == [("withdrawn", "已开展"), ("submitted", "补充:共32人参加")]


async def test_commands_that_may_not_share_go_alone_in_their_place(chat: Chat) -> None:
    zjj, jtj = await theme_days(chat)
    replies = await chat.say_together(
        [
            ("p_zjj_ll1", f"打卡 {zjj} 已开展"),
            ("p_zrj_ll1", "我"),
            ("p_jtj_ll1", f"打卡 {jtj} 已开展"),
            ("p_zrj_ll1", "签到 3 完成"),
        ]
    )
    assert len(replies) == 4, replies
    assert replies[0].startswith("已记录") and "自然资源和规划局" in replies[1]
    assert replies[2].startswith("已记录") and "没有“签到”这条指令" in replies[3]


async def test_a_message_handled_already_is_not_handled_again_in_company(chat: Chat) -> None:
    zjj, jtj = await theme_days(chat)
    assert (await chat.say_together([("p_zjj_ll1", f"打卡 {zjj} 已开展")]))[0].startswith("已记录")
    async with chat.ledger() as s:
        first = await s.scalar(
            select(AuditEntry.entity_key).where(AuditEntry.action == "command:打卡")
        )
    from bot.messages import ChatRef, Inbound

    def message(event_id: str, who: str, text: str) -> Inbound:
        from tests.chat import C5, STAFF

        return Inbound(
            platform="dingtalk",
            event_id=event_id,
            chat=ChatRef("dingtalk", C5, is_group=True),
            sender_id=STAFF[who],
            sender_name=who,
            text=text,
            received_at=chat.clock.now(),
            source="dingtalk_http",
        )

    dispatch_many = chat.deps.inbox.dispatch_many
    assert first is not None and dispatch_many is not None
    # The same message again (a sweep's copy, say) beside a new one: only the new one counts.
    await dispatch_many(
        [
            message(first, "p_zjj_ll1", f"打卡 {zjj} 已开展"),
            message("new-1", "p_jtj_ll1", f"打卡 {jtj} 好"),
        ]
    )
    assert await audited(chat, "command:打卡") == 2
    assert await audited(chat, "checkin.create") == 2
