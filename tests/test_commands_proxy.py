"""代报 through the DingTalk endpoint: a lead unit reports for a member of its community.

Also the helpers the other worker-command tests share (instance lookup, text with photos).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.duerules import Period
from bot.ledger.instances import materialise
from bot.models import Attachment, AuditEntry, CheckIn, PlanTask, TaskInstance, Unit
from tests.chat import C5, STAFF, Chat


async def instance(chat: Chat, unit: str, title_part: str, period: str = "2026-11") -> TaskInstance:
    """The unit's instance of the task whose title contains `title_part`, in `period`."""
    async with chat.ledger() as s:
        found = await s.scalar(
            select(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(
                Unit.key == unit,
                PlanTask.title.contains(title_part),
                TaskInstance.period == period,
            )
        )
    assert found is not None, (unit, title_part, period)
    return found


async def owe_october(chat: Chat) -> int:
    """Last month's instances too: on 2 November all of them are past their deadlines."""
    async with chat.ledger() as s:
        return await materialise(s, Period("monthly", 2026, 10), now=chat.clock.now())


async def unit_id(chat: Chat, key: str) -> int:
    async with chat.ledger() as s:
        found = await s.scalar(select(Unit.id).where(Unit.key == key))
    assert found is not None
    return found


async def checkins(chat: Chat) -> list[CheckIn]:
    async with chat.ledger() as s:
        return list((await s.scalars(select(CheckIn).order_by(CheckIn.id))).all())


async def say_with_photos(chat: Chat, who: str, text: str, codes: list[str]) -> list[str]:
    """One DingTalk richText message: text and pictures together, as a phone sends them."""
    before = len(chat.fake.sent)
    body: dict[str, Any] = chat.fake.bot_message(text, STAFF[who], C5, f"rich-{who}-{before}")
    del body["text"]
    body["msgtype"] = "richText"
    body["content"] = {"richText": [{"text": text}, *({"downloadCode": c} for c in codes)]}
    resp = await chat.client.post(
        "/hooks/dingtalk", json=body, headers=chat.fake.callback_headers()
    )
    assert resp.status == 200, await resp.text()
    await chat.deps.inbox.drain()
    await chat.delivered()  # the app's own worker may be sending beside us
    return [m.text or "" for m in chat.fake.sent[before:]]


async def test_lead_liaison_reports_for_a_member(chat: Chat) -> None:
    it = await instance(chat, "jtj", "主题党日")
    reply = await chat.one("p_zjj_ll1", f"代报 交通运输局 {it.no} 已开展11月主题党日活动")
    assert f"已代 **交通运输局** 记录：**{it.no}** 开展主题党日活动" in reply
    assert "迟报" not in reply
    [c] = await checkins(chat)
    assert (c.instance_id, c.on_behalf, c.for_unit_id) == (it.id, True, it.unit_id)
    assert c.text == "已开展11月主题党日活动"
    async with chat.ledger() as s:
        status = await s.scalar(select(TaskInstance.status).where(TaskInstance.id == it.id))
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert status == "submitted"
    assert "checkin.create" in actions and "command:代报" in actions


async def test_several_numbers_written_every_way(chat: Chat) -> None:
    first = await instance(chat, "jtj", "主题党日")
    second = await instance(chat, "jtj", "党小组会")
    numbers = f"{first.no}、{second.no}"
    reply = await chat.one("p_zjj_sec", f"代报　交通运输局　{numbers}　均已完成。")  # full-width
    assert reply.count("已代 **交通运输局** 记录") == 2
    assert {c.instance_id for c in await checkins(chat)} == {first.id, second.id}
    glued = await chat.one("p_zjj_sec", f"代报交通运输局{first.no} 补充照片说明")
    assert f"已代 **交通运输局** 更新：**{first.no}**" in glued
    assert len(await checkins(chat)) == 2  # updated, not duplicated


async def test_chinese_numbers_and_late_reports(chat: Chat) -> None:
    await owe_october(chat)
    late = await instance(chat, "jtj", "主题党日", period="2026-10")
    spelled = "".join("零一二三四五六七八九"[int(d)] for d in str(late.no))
    reply = await chat.one("p_zjj_ll1", f"代报 交通运输局 第{spelled} 已开展")
    assert f"**{late.no}** 开展主题党日活动" in reply and "记为迟报" in reply
    [c] = await checkins(chat)
    assert c.late and c.on_behalf and c.instance_id == late.id


async def test_admin_may_report_for_any_unit(chat: Chat) -> None:
    it = await instance(chat, "jyj", "主题党日")
    reply = await chat.one("p_admin_li", f"代报 教育局 {it.no} 已开展")
    assert "已代 **教育局** 记录" in reply
    [c] = await checkins(chat)
    assert c.on_behalf and c.for_unit_id == it.unit_id


async def test_own_unit_is_a_plain_report(chat: Chat) -> None:
    it = await instance(chat, "zjj", "主题党日")
    reply = await chat.one("p_zjj_ll1", f"代报 住建局 {it.no} 已开展")
    assert f"已记录：**{it.no}**" in reply
    [c] = await checkins(chat)
    assert not c.on_behalf


async def test_photos_sent_after_a_proxy_report_attach_to_it(chat: Chat) -> None:
    it = await instance(chat, "jtj", "主题党日")
    await chat.one("p_zjj_ll1", f"代报 交通运输局 {it.no} 已开展")
    assert "1 张照片" in await chat.one("p_zjj_ll1", "", picture="dl-proxy-1")
    async with chat.ledger() as s:
        refs = (await s.scalars(select(Attachment.ref))).all()
    assert refs == ["dl-proxy-1"]


async def test_member_units_may_not_proxy(chat: Chat) -> None:
    it = await instance(chat, "jtj", "主题党日")
    reply = await chat.one("p_zrj_ll1", f"代报 交通运输局 {it.no} 已开展")
    assert "只有党建共同体牵头单位可以代报" in reply and "**自然资源规划局**不是牵头单位" in reply
    assert "只有党建共同体牵头单位" in await chat.one("p_zrj_sec", f"代报 交通运输局 {it.no} 好")
    assert await checkins(chat) == []


async def test_lead_may_not_proxy_outside_its_community(chat: Chat) -> None:
    it = await instance(chat, "wjw", "主题党日")
    reply = await chat.one("p_zjj_ll1", f"代报 卫健委 {it.no} 已开展")
    assert "**卫健委** 属于第六党建共同体" in reply
    assert "牵头单位 **教育局**" in reply
    assert await checkins(chat) == []
    async with chat.ledger() as s:
        refused = (
            await s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "refused:代报"))
        ).all()
    assert refused and refused[0].startswith("errors/proxy_not_in_community.md.j2")


async def test_unit_names_unknown_or_ambiguous(chat: Chat) -> None:
    unknown = await chat.one("p_zjj_ll1", "代报 交通局 3 已开展")
    assert "没有找到名为“交通局”的单位" in unknown and "**交通运输局**" in unknown
    ambiguous = await chat.one("p_zjj_ll1", "代报 住房 3 已开展")
    assert "“住房”对应多个单位" in ambiguous
    assert "**住建局**" in ambiguous and "**公积金中心**" in ambiguous
    many = await chat.one("p_zjj_ll1", "代报 局 3 已开展")
    assert "等 34 个" in many
    assert await checkins(chat) == []


async def test_malformed_proxy_reports_show_the_form(chat: Chat) -> None:
    assert "请写上被代报的单位" in await chat.one("p_zjj_ll1", "代报")
    assert "请写上要代报的任务编号" in await chat.one("p_zjj_ll1", "代报 交通运输局 已开展")
    no_text = await chat.one("p_zjj_ll1", "代报 交通运输局 3")
    assert "请写一句完成情况" in no_text and "代报 单位 编号 说明" in no_text
    missing = await chat.one("p_zjj_ll1", "代报 交通运输局 999 已开展")
    assert "没有找到 **交通运输局** 编号为 **999** 的任务" in missing
    assert await checkins(chat) == []


async def test_closed_instances_are_not_reported_again(chat: Chat) -> None:
    done = await instance(chat, "jtj", "主题党日")
    owed = await instance(chat, "jtj", "党小组会")
    async with chat.ledger() as s:
        row = await s.get(TaskInstance, done.id)
        assert row is not None
        row.status = "accepted"
    reply = await chat.one("p_zjj_ll1", f"代报 交通运输局 {done.no} {owed.no} 已开展")
    assert f"未记录：**{done.no}**" in reply and "已审核通过" in reply
    assert f"记录：**{owed.no}**" in reply
    assert [c.instance_id for c in await checkins(chat)] == [owed.id]


async def test_strangers_cannot_proxy(chat: Chat) -> None:
    assert "申请绑定" in await chat.one("stranger", "代报 交通运输局 3 已开展")
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 0
