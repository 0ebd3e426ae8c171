"""申请列表, 批准, 拒绝: bind requests decided by admins; the requester hears the outcome.

Requests are inserted as `申请绑定` would leave them (that command is another module's).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.models import BindRequest, Identity, Person, Role, Unit
from tests.chat import STAFF, Chat
from tests.test_commands_admin import admin, audits


async def _request(chat: Chat, staff: str, name: str, unit: str) -> int:
    async with chat.ledger() as s:
        unit_id = await s.scalar(select(Unit.id).where(Unit.key == unit))
        assert unit_id is not None
        row = BindRequest(
            platform="dingtalk",
            user_id=staff,
            name=name,
            unit_id=unit_id,
            status="pending",
            requested_at=chat.clock.now() - timedelta(hours=1),
        )
        s.add(row)
        await s.flush()
        return row.id


def _direct(chat: Chat, staff: str) -> list[str]:
    return [
        m.text or ""
        for m in chat.fake.sent
        if m.endpoint == "oToMessages/batchSend" and m.target == staff
    ]


async def test_list_pending_requests(chat: Chat) -> None:
    assert "目前没有待批准的申请" in (await admin(chat, "申请列表")).reply
    first = await _request(chat, STAFF["stranger"], "张新", "zrj")
    reply = (await admin(chat, "申请列表")).reply
    assert f"申请编号 **{first}**：张新 申请绑定 自然资源规划局（钉钉，11月2日 08:00）" in reply
    assert "批准 申请编号" in reply


async def test_approve_makes_the_requester_a_liaison(chat: Chat) -> None:
    stranger = STAFF["stranger"]
    assert "申请绑定" in await chat.one("stranger", "我")
    no = await _request(chat, stranger, "张新", "zrj")
    said = await admin(chat, f"批准 {no}")
    assert f"已批准申请 **{no}**：张新 现为 自然资源规划局 联络员" in said.reply
    assert "已通知申请人" in said.reply
    [notice] = _direct(chat, stranger)
    assert "您的绑定申请已通过" in notice and "江城市自然资源和规划局机关党委" in notice
    async with chat.ledger() as s:
        person = await s.scalar(select(Person).where(Person.key == f"chat_dingtalk_{stranger}"))
        assert person is not None and person.name == "张新" and person.active
        identity = await s.scalar(select(Identity).where(Identity.person_id == person.id))
        assert identity is not None and (identity.platform, identity.user_id) == (
            "dingtalk",
            stranger,
        )
        role = await s.scalar(select(Role).where(Role.person_id == person.id))
        zrj = await s.scalar(select(Unit.id).where(Unit.key == "zrj"))
        assert role is not None and (role.role, role.unit_id, role.source) == (
            "liaison",
            zrj,
            "chat",
        )
        request = await s.get(BindRequest, no)
        admin_id = await s.scalar(select(Person.id).where(Person.key == "p_admin_li"))
        assert request is not None
        assert (request.status, request.decided_by) == ("approved", admin_id)
        assert request.decided_at == chat.clock.now()
    [entry] = await audits(chat, "bind.approve")
    assert entry.before == {"status": "pending"} and entry.after is not None
    assert entry.after["new_person"] is True and entry.after["unit"] == "zrj"
    # The bot knows them now.
    assert "自然资源和规划局机关党委：联络员" in await chat.one("stranger", "我")
    again = (await admin(chat, f"批准 {no}")).reply
    assert f"申请 **{no}** 已由李慧敏于 11月2日 09:00 批准，不能重复处理" in again


async def test_approve_reuses_a_known_person(chat: Chat) -> None:
    no = await _request(chat, STAFF["p_jtj_ll1"], "韩春梅", "zrj")
    said = await admin(chat, f"批准 {no}")
    assert "已有人员档案，已沿用" in said.reply
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).where(Person.key.like("chat_%"))) == 0
        person = await s.scalar(select(Person).where(Person.key == "p_jtj_ll1"))
        assert person is not None
        units = (
            await s.scalars(
                select(Unit.key)
                .join(Role, Role.unit_id == Unit.id)
                .where(Role.person_id == person.id, Role.role == "liaison")
                .order_by(Unit.key)
            )
        ).all()
    assert list(units) == ["jtj", "zrj"]
    me = await chat.one("p_jtj_ll1", "我")
    assert "交通运输局" in me and "自然资源和规划局" in me


async def test_reject_with_a_reason(chat: Chat) -> None:
    stranger = STAFF["stranger"]
    no = await _request(chat, stranger, "张新", "zrj")
    said = await admin(chat, f"拒绝 {no} 不是本单位党务工作人员")
    assert f"已拒绝申请 **{no}**：张新 申请绑定 自然资源规划局，理由：不是本单位党务工作人员" in (
        said.reply
    )
    [notice] = _direct(chat, stranger)
    assert "未获批准，理由：不是本单位党务工作人员" in notice
    async with chat.ledger() as s:
        request = await s.get(BindRequest, no)
        assert request is not None and request.status == "rejected"
        assert await s.scalar(select(func.count()).where(Person.key.like("chat_%"))) == 0
    [entry] = await audits(chat, "bind.reject")
    assert entry.detail == "不是本单位党务工作人员"
    assert "申请绑定" in await chat.one("stranger", "我")  # still unknown
    assert "已由李慧敏于 11月2日 09:00 拒绝" in (await admin(chat, f"批准 {no}")).reply


async def test_decision_refusals(chat: Chat) -> None:
    assert "没有编号为 **7** 的绑定申请" in (await admin(chat, "批准 7")).reply
    assert "没有编号为 **7** 的绑定申请" in (await admin(chat, "拒绝 七 理由")).reply
    assert "请写上申请编号" in (await admin(chat, "批准 张新")).reply
    assert "请写上申请编号" in (await admin(chat, "拒绝")).reply
