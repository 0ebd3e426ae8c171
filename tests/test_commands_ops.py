"""绑定群, 公告, 投递状态 and 投递重试 through the DingTalk endpoint: replies, what the groups
received, the ledger and the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.models import AuditEntry, ChatGroup, Community, OutboxMessage
from bot.startup import apply_config
from tests.chat import C5, Chat

NEW_GROUP = "cidNEWc5GroupForBinding=="
C6, C7 = "cidglNzFYj49LUcUnfRCETaIU==", "cid5h8pcLdSu9wDR5h6RnuoQa=="


@pytest.fixture(autouse=True)
def _no_real_wecom(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's WeCom groups get posts too: send them to a closed local port, never to
    the real WeCom (the chat harness configures only the fake DingTalk)."""
    monkeypatch.setenv("DUBAN_WECOM_API_BASE", "http://127.0.0.1:9")


async def answer(chat: Chat, who: str, text: str, **kw: Any) -> str:
    """The one reply to `text`; posts into groups are read with posts()."""
    before = len(chat.fake.sent)
    await chat.say(who, text, **kw)
    replies = [m.text or "" for m in chat.fake.sent[before:] if m.endpoint == "sendBySession"]
    assert len(replies) == 1, replies
    return replies[0]


async def actions(chat: Chat, prefix: str) -> list[str]:
    """Audited actions starting with prefix, but not the configuration's own."""
    async with chat.ledger() as s:
        rows = await s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.like(f"{prefix}%"), AuditEntry.actor != "config")
            .order_by(AuditEntry.id)
        )
        return list(rows.all())


async def announced(chat: Chat) -> dict[str, OutboxMessage]:
    async with chat.ledger() as s:
        rows = await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "announce"))
        return {r.channel: r for r in rows.all()}


def posts(chat: Chat) -> list[tuple[str, str]]:
    """(group, text) of every group post the fake DingTalk showed (replies excluded)."""
    return [
        (m.target, m.text or "")
        for m in chat.fake.sent
        if m.endpoint in ("groupMessages/send", "robot/send")
    ]


# -- 绑定群 ------------------------------------------------------------------------------------


async def test_bind_the_current_group_to_a_community(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "绑定群 第五共同体", group=NEW_GROUP)
    assert "已把本群（测试群）绑定为 **第五党建共同体** 的工作群" in reply
    assert "原来的群是 第五党建共同体工作群" in reply
    async with chat.ledger() as s:
        group = await s.scalar(select(ChatGroup).where(ChatGroup.key == "chat_c5"))
        assert (group.platform, group.chat_id, group.channel_type, group.active) == (
            "dingtalk",
            NEW_GROUP,
            "dingtalk_openapi",
            True,
        )
        c5 = await s.scalar(select(Community).where(Community.key == "c5"))
        assert c5.group_id == group.id
        entry = await s.scalar(
            select(AuditEntry).where(AuditEntry.action == "community.bind_group")
        )
    assert entry.entity_key == "c5" and entry.actor == "p_admin_li"
    assert entry.before["group"] == "g_c5" and entry.after["group"] == "chat_c5"
    assert await actions(chat, "group.") == ["group.create"]
    # Again, in other words: nothing changes.
    for text in ("绑定群 第5共同体", "绑定群 五", "绑定群 c5", "绑定群　第五党建共同体。"):
        assert "已经是 **第五党建共同体** 的工作群" in await chat.one(
            "p_admin_li", text, group=NEW_GROUP
        )
    assert await actions(chat, "community.bind_group") == ["community.bind_group"]
    # What the community is told from now on goes to the bound group.
    await answer(chat, "p_admin_li", "公告 第五共同体 本群已启用", group=NEW_GROUP)
    assert posts(chat) == [(NEW_GROUP, "### 机关工委公告\n本群已启用\n\n—— 李慧敏")]


async def test_a_binding_survives_the_configuration_sync_and_can_be_undone(chat: Chat) -> None:
    await chat.one("p_admin_li", "绑定群 c5", group=NEW_GROUP)
    await apply_config(chat.deps.db, chat.deployment, chat.clock)  # as on every start
    async with chat.ledger() as s:
        group = await s.scalar(select(ChatGroup).where(ChatGroup.key == "chat_c5"))
        c5 = await s.scalar(select(Community).where(Community.key == "c5"))
        assert group.active and c5.group_id == group.id
    # Bound back to the group the configuration gives it: the configuration owns it again.
    back = await chat.one("p_admin_li", "绑定群 第五共同体")  # in the configured c5 group
    assert "绑定为 **第五党建共同体** 的工作群，原来的群是 测试群" in back
    await apply_config(chat.deps.db, chat.deployment, chat.clock)
    async with chat.ledger() as s:
        configured = await s.scalar(select(ChatGroup.id).where(ChatGroup.key == "g_c5"))
        c5 = await s.scalar(select(Community).where(Community.key == "c5"))
        assert c5.group_id == configured


async def test_another_communitys_configured_group_is_refused(chat: Chat) -> None:
    refused = await chat.one("p_admin_li", "绑定群 第六党建共同体")  # in the c5 group
    assert "本群（第五党建共同体工作群）是配置文件中 第五党建共同体 的工作群" in refused
    assert "不能再用 **绑定群** 分给 第六党建共同体" in refused
    async with chat.ledger() as s:
        c6_group = await s.scalar(select(ChatGroup.id).where(ChatGroup.key == "g_c6"))
        c6 = await s.scalar(select(Community).where(Community.key == "c6"))
        assert c6.group_id == c6_group
    assert await actions(chat, "community.") == []


async def test_binding_refusals(chat: Chat) -> None:
    assert "这里不是群聊" in await chat.one("p_admin_li", "绑定群 第五共同体", group=None)
    unknown = await chat.one("p_admin_li", "绑定群 第九共同体", group=NEW_GROUP)
    assert "没有找到共同体“第九共同体”" in unknown and "第五党建共同体" in unknown
    assert "请写上共同体名称" in await chat.one("p_admin_li", "绑定群", group=NEW_GROUP)
    worker = await chat.one("p_zjj_ll1", "绑定群 第五共同体", group=NEW_GROUP)
    assert "“绑定群”只有机关工委管理员可以使用" in worker
    assert await actions(chat, "community.") == []
    assert await actions(chat, "refused:") == ["refused:绑定群"] * 4


# -- 公告 --------------------------------------------------------------------------------------


async def test_announce_to_every_group_never_mentions_everyone(chat: Chat) -> None:
    for cid in (C6, C7):
        chat.fake.add_group(cid)
    chat.fake.add_robot("x", secret="x")  # g_c8's custom robot (tests.configs.SAMPLE_SECRETS)
    reply = await answer(chat, "p_admin_li", "公告 @所有人 明天上午9点召开推进会，请准时参加 @all")
    assert "公告已发往 8 个群" in reply
    assert "- 第五党建共同体工作群（第五党建共同体）" in reply
    rows = await announced(chat)
    assert sorted(rows) == [f"g_c{n}" for n in range(1, 9)]
    assert rows["g_c5"].dedupe_key.startswith("announce:dingtalk:msg1:")
    shown = dict(posts(chat))
    assert sorted(shown) == sorted([C5, C6, C7, "x"])
    for text in shown.values():
        assert "＠所有人 明天上午9点召开推进会，请准时参加 ＠all" in text
        assert "@" not in text
    robot = next(m for m in chat.fake.sent if m.endpoint == "robot/send")
    assert not robot.payload.get("at", {}).get("isAtAll")
    assert await actions(chat, "announce") == ["announce"]


async def test_announce_to_chosen_communities(chat: Chat) -> None:
    chat.fake.add_group(C6)
    reply = await answer(
        chat, "p_admin_li", "公告 第五共同体、第六共同体 请于本周五前报送主题党日材料"
    )
    assert "公告已发往 2 个群" in reply
    assert sorted(await announced(chat)) == ["g_c5", "g_c6"]
    assert sorted(posts(chat)) == sorted(
        [(cid, "### 机关工委公告\n请于本周五前报送主题党日材料\n\n—— 李慧敏") for cid in (C5, C6)]
    )
    reply = await answer(chat, "p_admin_li", "公告　Ｃ５，c7：第二条：请关注")  # full-width, colon
    assert "公告已发往 2 个群" in reply
    async with chat.ledger() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage.channel)
                .where(OutboxMessage.dedupe_key.like("announce:dingtalk:msg2:%"))
                .order_by(OutboxMessage.channel)
            )
        ).all()
    assert rows == ["g_c5", "g_c7"]
    # A first word that is not a community is part of the notice, to everyone.
    assert "公告已发往 8 个群" in await answer(chat, "p_admin_li", "公告 一、各单位注意")


async def test_announce_refusals_send_nothing(chat: Chat) -> None:
    unknown = await chat.one("p_admin_li", "公告 第九共同体 明天开会")
    assert "没有找到共同体“第九共同体”" in unknown
    assert "请写上公告内容" in await chat.one("p_admin_li", "公告")
    assert "请写上公告内容" in await chat.one("p_admin_li", "公告 第五共同体")
    assert "只有机关工委管理员可以使用" in await chat.one("p_zjj_ll1", "公告 大家好")
    assert await announced(chat) == {}
    assert posts(chat) == []


# -- 投递 --------------------------------------------------------------------------------------


async def test_delivery_status_and_retry(chat: Chat) -> None:
    assert "所有消息都已送达" in await chat.one("p_admin_li", "投递状态")
    # The robot is not in the c6 group yet: DingTalk refuses, the notice is dead.
    await chat.one("p_admin_li", "公告 第六共同体 请查收")
    row = (await announced(chat))["g_c6"]
    async with chat.ledger() as s:
        dead = await s.get(OutboxMessage, row.id)
        assert dead.status == "dead"
    status = await chat.one("p_admin_li", "投递 状态")
    assert "- **第六党建共同体工作群**：待发 0 · 发送中 0 · 失败 1" in status
    assert f"- **{row.id}** 第六党建共同体工作群 · 公告 · 11月2日 09:00" in status
    assert "notFound" in status
    assert f"投递重试 {row.id}" in status
    # Once the robot is in the group, the same message goes out.
    chat.fake.add_group(C6)
    retried = await answer(chat, "p_admin_li", f"投递重试 {row.id}")
    assert f"已重新排队：**{row.id}**" in retried
    assert posts(chat) == [(C6, "### 机关工委公告\n请查收\n\n—— 李慧敏")]
    async with chat.ledger() as s:
        assert (await s.get(OutboxMessage, row.id)).status == "sent"
    assert await actions(chat, "outbox.retry") == ["outbox.retry"]
    again = await chat.one("p_admin_li", f"投递重试 第{row.id}号")  # already sent
    assert f"没有编号为 **{row.id}** 的发送失败消息" in again


async def test_delivery_refusals(chat: Chat) -> None:
    assert "请写上要重发的消息编号" in await chat.one("p_admin_li", "投递重试")
    assert "没有编号为 **999** 的发送失败消息" in await chat.one("p_admin_li", "投递重试 999")
    assert "“投递 状态”只有机关工委管理员可以使用" in await chat.one("p_zrj_ll1", "投递状态")
    assert "只有机关工委管理员可以使用" in await chat.one("p_zrj_ll1", "投递重试 1")
    assert await actions(chat, "refused:") == [
        "refused:投递 重试",
        "refused:投递 重试",
        "refused:投递 状态",
        "refused:投递 重试",
    ]
