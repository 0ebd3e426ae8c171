"""申请绑定 through the DingTalk endpoint: a stranger asks to act for a unit; the admins' group
hears of it with the commands that decide it."""

from __future__ import annotations

from sqlalchemy import select

from bot.models import AuditEntry, BindRequest, OutboxMessage
from bot.outbox import message_from_json
from tests.chat import STAFF, Chat
from tests.test_commands_proxy import unit_id


async def requests(chat: Chat) -> list[BindRequest]:
    async with chat.ledger() as s:
        return list((await s.scalars(select(BindRequest).order_by(BindRequest.id))).all())


async def admin_notices(chat: Chat) -> list[str]:
    async with chat.ledger() as s:
        rows = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "bind_request"))
        ).all()
    assert all(r.group_key == "g_admins" for r in rows)
    return [message_from_json(r.body).body for r in rows]


async def test_a_stranger_asks_and_the_admins_hear_of_it(chat: Chat) -> None:
    reply = await chat.one("stranger", "申请绑定 交通运输局")
    [request] = await requests(chat)
    assert f"已提交绑定申请，编号 **{request.id}**" in reply
    assert "**江城市交通运输局机关党委** 的联络员" in reply and "已通知机关工委管理员" in reply
    assert (request.platform, request.user_id, request.status) == (
        "dingtalk",
        STAFF["stranger"],
        "pending",
    )
    assert request.unit_id == await unit_id(chat, "jtj")
    assert request.name == STAFF["stranger"]  # the fake's sender nick is the staff id
    [notice] = await admin_notices(chat)
    assert f"### 绑定申请 {request.id}" in notice
    assert f"`批准 {request.id}`" in notice and f"`拒绝 {request.id} 理由`" in notice
    assert "江城市交通运输局机关党委" in notice and "钉钉账号" in notice
    # …and it reached the admins' WeCom group for real.
    assert any(f"### 绑定申请 {request.id}" in t for t in chat.wecom.texts())
    async with chat.ledger() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "bind.request"))
    assert entry is not None and entry.entity_key == str(request.id)


async def test_one_pending_request_at_a_time(chat: Chat) -> None:
    await chat.one("stranger", "申请绑定 交通运输局")
    again = await chat.one("stranger", "申请绑定　水利局。")
    [request] = await requests(chat)
    assert f"您已提交过绑定申请（编号 **{request.id}**）" in again
    assert len(await admin_notices(chat)) == 1
    other = await chat.one("stranger2", "申请绑定 水利局")
    assert "已提交绑定申请" in other and len(await requests(chat)) == 2


async def test_people_already_known_need_no_binding(chat: Chat) -> None:
    reply = await chat.one("p_zrj_ll1", "申请绑定 交通运输局")
    assert "您已经绑定了" in reply and "自然资源规划局联络员" in reply
    assert "机关工委管理员" in await chat.one("p_admin_li", "申请绑定 交通运输局")
    assert "住建局书记" in await chat.one("p_zjj_sec", "申请绑定 住建局")
    assert await requests(chat) == []


async def test_unit_names_unknown_ambiguous_or_missing(chat: Chat) -> None:
    unknown = await chat.one("stranger", "申请绑定 交通局")
    assert "没有找到名为“交通局”的单位" in unknown and "**交通运输局**" in unknown
    assert "对应多个单位" in await chat.one("stranger", "申请绑定 住房")
    usage = await chat.one("stranger", "申请绑定")
    assert "请写上您所在的单位" in usage and "申请绑定 交通运输局" in usage
    assert await requests(chat) == [] and await admin_notices(chat) == []


async def test_strangers_are_told_how_to_bind(chat: Chat) -> None:
    assert "申请绑定 单位名称" in await chat.one("stranger", "我")
    help_ = await chat.one("stranger", "帮助")
    assert "申请绑定" in help_
