"""问题 and 整改 through the DingTalk endpoint: open problems, rectification reports and their
photos, for members, leads, secretaries and admins, and every refusal."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.models import Attachment, AuditEntry, Problem, Rectification
from tests.chat import Chat
from tests.test_commands_proxy import say_with_photos, unit_id


async def problem(
    chat: Chat, unit: str, description: str, deadline: datetime, status: str = "open"
) -> int:
    async with chat.ledger() as s:
        row = Problem(
            unit_id=await unit_id(chat, unit),
            description=description,
            deadline=deadline,
            status=status,
            found_at=chat.clock.now(),
        )
        s.add(row)
        await s.flush()
        return row.id


def day(month: int, d: int) -> datetime:
    return datetime(2026, month, d, 23, 59, 59, tzinfo=SHANGHAI)


async def rectifications(chat: Chat) -> list[Rectification]:
    async with chat.ledger() as s:
        return list((await s.scalars(select(Rectification).order_by(Rectification.id))).all())


async def attachments(chat: Chat) -> list[tuple[int | None, int | None, str]]:
    async with chat.ledger() as s:
        rows = await s.execute(
            select(Attachment.checkin_id, Attachment.rectification_id, Attachment.ref).order_by(
                Attachment.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_unit_sees_its_open_problems(chat: Chat) -> None:
    mine = await problem(chat, "zrj", "会议记录不规范", day(11, 30))
    late = await problem(chat, "zrj", "党费收缴台账缺失", day(10, 31))
    await problem(chat, "zrj", "已经整改好的问题", day(10, 1), status="closed")
    await problem(chat, "jtj", "别的单位的问题", day(11, 30))
    reply = await chat.one("p_zrj_ll1", "问题")
    assert reply.startswith("### 未销号的问题（2 项）")
    assert reply.index(f"**问题 {late}**") < reply.index(f"**问题 {mine}**")  # soonest first
    assert "会议记录不规范" in reply and "整改期限 11月30日（还剩 28 天）" in reply
    assert "党费收缴台账缺失" in reply and "已逾期 2 天" in reply
    assert "尚未报送整改进展" in reply
    assert "别的单位" not in reply and "已经整改好" not in reply
    assert reply == await chat.one("p_zrj_sec", "problems")


async def test_leads_see_their_community_and_admins_everything(chat: Chat) -> None:
    await problem(chat, "zrj", "会议记录不规范", day(11, 30))
    await problem(chat, "jyj", "教育局的问题", day(11, 30))
    lead = await chat.one("p_zjj_ll1", "问题")
    assert "会议记录不规范" in lead and "自然资源规划局" in lead and "教育局的问题" not in lead
    admin = await chat.one("p_admin_li", "问题")
    assert "会议记录不规范" in admin and "教育局的问题" in admin
    assert "本单位目前没有未销号的问题" in await chat.one("p_jtj_ll1", "问题")


async def test_rectification_is_recorded_and_shown(chat: Chat) -> None:
    no = await problem(chat, "zrj", "会议记录不规范", day(11, 30))
    reply = await chat.one("p_zrj_ll1", f"整改　{no}　已修订会议记录制度，重新培训记录员。")
    assert f"已记录问题 **{no}**（自然资源规划局）的整改进展" in reply
    assert "10分钟内直接发送即可自动附上" in reply
    [r] = await rectifications(chat)
    assert (r.problem_id, r.text) == (no, "已修订会议记录制度，重新培训记录员")
    async with chat.ledger() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "problem.rectify"))
        status = await s.scalar(select(Problem.status).where(Problem.id == no))
    assert entry is not None and entry.entity_key == str(no)
    assert entry.after is not None and entry.after["reports"] == 1
    assert status == "open"  # only the committee closes a problem
    listing = await chat.one("p_zrj_ll1", "问题")
    assert "最近整改：已修订会议记录制度" in listing and "（11月2日）" in listing


async def test_photos_with_the_report_or_soon_after(chat: Chat) -> None:
    no = await problem(chat, "zrj", "阵地建设不到位", day(11, 30))
    [reply] = await say_with_photos(chat, "p_zrj_ll1", f"整改 {no} 已更换宣传栏", ["dl-a", "dl-b"])
    assert "已收到照片 2 张" in reply
    [r] = await rectifications(chat)
    chat.clock.at += timedelta(minutes=9)
    later = await chat.one("p_zrj_ll1", "", picture="dl-c")
    assert f"已把 1 张照片附到问题 **{no}** 的整改进展" in later
    assert await attachments(chat) == [
        (None, r.id, "dl-a"),
        (None, r.id, "dl-b"),
        (None, r.id, "dl-c"),
    ]
    chat.clock.at += timedelta(minutes=11)
    too_late = await chat.one("p_zrj_ll1", "", picture="dl-d")
    assert "请告诉我要做什么" in too_late
    assert len(await attachments(chat)) == 3


async def test_photos_only_report(chat: Chat) -> None:
    no = await problem(chat, "zrj", "阵地建设不到位", day(11, 30))
    [reply] = await say_with_photos(chat, "p_zrj_ll1", f"整改 {no}", ["dl-only"])
    assert "已收到照片 1 张" in reply
    [r] = await rectifications(chat)
    assert r.text == "" and await attachments(chat) == [(None, r.id, "dl-only")]


async def test_a_lead_reports_for_a_member_and_admins_anywhere(chat: Chat) -> None:
    member = await problem(chat, "jtj", "台账不全", day(11, 30))
    assert "已记录问题" in await chat.one("p_zjj_ll1", f"整改 {member} 已补全台账")
    elsewhere = await problem(chat, "jyj", "教育局的问题", day(11, 30))
    assert "已记录问题" in await chat.one("p_admin_li", f"整改 {elsewhere} 督导已到位")
    assert [r.problem_id for r in await rectifications(chat)] == [member, elsewhere]


async def test_refusals(chat: Chat) -> None:
    other = await problem(chat, "jtj", "台账不全", day(11, 30))
    closed = await problem(chat, "zrj", "已整改", day(10, 1), status="closed")
    foreign = await chat.one("p_zrj_ll1", f"整改 {other} 已整改")
    assert f"问题 **{other}** 是 **交通运输局** 的，您不能为它报送整改" in foreign
    assert "已销号，无需再报送整改" in await chat.one("p_zrj_ll1", f"整改 {closed} 已整改")
    assert "没有编号为 **999** 的问题" in await chat.one("p_zrj_ll1", "整改 999 已整改")
    far = await problem(chat, "wjw", "卫健委的问题", day(11, 30))
    assert "是 **卫健委** 的" in await chat.one("p_zjj_ll1", f"整改 {far} 已整改")
    assert await rectifications(chat) == []
    async with chat.ledger() as s:
        refused = (
            await s.scalars(select(AuditEntry.action).where(AuditEntry.action == "refused:整改"))
        ).all()
    assert len(refused) == 4


async def test_malformed_input(chat: Chat) -> None:
    no = await problem(chat, "zrj", "会议记录不规范", day(11, 30))
    assert "请写上问题编号" in await chat.one("p_zrj_ll1", "整改 已经改好了")
    assert "请写一个问题编号" in await chat.one("p_zrj_ll1", f"整改 {no}、{no + 1} 已改")
    assert "请写一句整改进展" in await chat.one("p_zrj_ll1", f"整改 {no}")
    assert "“问题”不需要参数" in await chat.one("p_zrj_ll1", "问题 全部")
    assert "申请绑定" in await chat.one("stranger", f"整改 {no} 已改")
    assert "申请绑定" in await chat.one("stranger", "问题")
    assert await rectifications(chat) == []
