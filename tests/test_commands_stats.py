"""统计 and 发布 月报 through the DingTalk endpoint, replies read from the fake, the ledger read
back: who sees which scope, rankings hidden until published, the publication posted once into
every community group."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger import reviews
from bot.ledger.stats import report
from bot.models import (
    AuditEntry,
    OutboxMessage,
    Person,
    PlanTask,
    ReportPublication,
    TaskInstance,
    Unit,
)
from bot.textdates import split_period
from tests.chat import C5, Chat

NOV = Period.parse("2026-11")
DEC3 = datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI)  # a Thursday
DEC2 = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)


async def nov_instance(chat: Chat, unit: str, title: str = "", *, earliest: bool = False) -> int:
    async with chat.ledger() as s:
        stmt = (
            select(TaskInstance.no)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(Unit.key == unit, TaskInstance.period == "2026-11")
        )
        if title:
            stmt = stmt.where(PlanTask.title.contains(title))
        if earliest:
            stmt = stmt.order_by(TaskInstance.due_at, TaskInstance.no)
        no = await s.scalar(stmt.limit(1))
    assert no is not None
    return no


async def count_nov(chat: Chat, *units: str) -> int:
    """Instances due in November (monthly, quarterly and yearly tasks alike)."""
    start = datetime(2026, 11, 1, tzinfo=SHANGHAI)
    async with chat.ledger() as s:
        stmt = (
            select(func.count())
            .select_from(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(
                TaskInstance.due_at >= start,
                TaskInstance.due_at < datetime(2026, 12, 1, tzinfo=SHANGHAI),
            )
        )
        if units:
            stmt = stmt.where(Unit.key.in_(units))
        n = await s.scalar(stmt)
    assert n
    return n


async def november(chat: Chat) -> int:
    """zrj reports one task on time (Nov 2) and its earliest one late (Dec 2); one of jtj's is
    excused. Returns the days zrj's late report was late."""
    await chat.one("p_zrj_ll1", f"打卡 {await nov_instance(chat, 'zrj', '主题党日')} 已开展")
    early = await nov_instance(chat, "zrj", earliest=True)
    chat.clock.at = DEC2
    assert "迟报" in await chat.one("p_zrj_ll1", f"打卡 {early} 已补报")
    excused = await nov_instance(chat, "jtj")
    async with chat.ledger() as s:
        inst = await s.scalar(
            select(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(Unit.key == "jtj", TaskInstance.no == excused)
        )
        assert inst is not None
        await reviews.excuse(s, inst, reason="机构调整", now=DEC2, actor="test")
        due = await s.scalar(
            select(TaskInstance.due_at)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(Unit.key == "zrj", TaskInstance.no == early)
        )
    assert due is not None
    chat.clock.at = DEC3
    return (DEC2.date() - due.astimezone(SHANGHAI).date()).days


async def test_admin_sees_the_committee_and_unpublished_ranks_stay_out_of_groups(
    chat: Chat,
) -> None:
    await chat.one("p_zrj_ll1", f"打卡 {await nov_instance(chat, 'zrj', '主题党日')} 已开展")
    total = await count_nov(chat)
    reply = await chat.one("p_admin_li", "统计", group=None)
    assert reply.startswith("### 统计：全委 · 2026年11月")
    assert f"应报 {total}，按时 1，迟报 0，逾期 0，免报 0，按时率 100%" in reply  # of what fell due
    assert "平均迟报 —，未销号问题 0，整改销号率 —" in reply
    assert "- 第五党建共同体：按时率 100%，逾期 0（第1名）" in reply  # 1 of 1 due so far
    assert "**全委前三**：1. 自然资源规划局 100%；2. 市委办 —" in reply  # nothing due yet
    assert "按时率近1个月：11月 100%" in reply
    assert "（排名尚未发布，仅供机关工委参考）" in reply
    in_group = await chat.one("p_admin_li", "统计")  # in the 第五 community's group
    assert "全委前三" not in in_group and "（第1名）" not in in_group
    assert "排名经机关工委审核发布后在此显示。" in in_group


async def test_lead_units_see_their_community_and_workers_their_unit(chat: Chat) -> None:
    days = await november(chat)
    c5, zrj = await count_nov(chat, *UNITS_C5), await count_nov(chat, "zrj")
    lead = await chat.one("p_zjj_ll1", "统计 上月")
    assert lead.startswith("### 统计：第五党建共同体 · 2026年11月")
    assert f"应报 {c5}，按时 1，迟报 1，逾期 {c5 - 3}，免报 1，按时率 1%" in lead
    assert f"平均迟报 {days}.0 天" in lead
    assert f"- 自然资源规划局：按时率 {round(100 / zrj)}%，迟报 1，逾期 {zrj - 2}" in lead
    assert lead.index("- 住建局") < lead.index("- 自然资源规划局")  # unit order, not ranked
    assert "排名经机关工委审核发布后在此显示。" in lead
    member = await chat.one("p_zjj_ll1", "统计 上月 自然资源规划局")
    assert member.startswith("### 统计：自然资源规划局 · 2026年11月")
    refused = await chat.one("p_zjj_ll1", "统计 第六共同体")
    assert "您不能查看“第六党建共同体”的统计" in refused and "牵头单位可以查看本共同体" in refused
    own = await chat.one("p_zrj_ll1", "统计 上月")
    assert own.startswith("### 统计：自然资源规划局 · 2026年11月")
    assert f"应报 {zrj}，按时 1，迟报 1，逾期 {zrj - 2}，免报 0，按时率 {round(100 / zrj)}%" in own
    assert f"平均迟报 {days}.0 天" in own and "排名：" not in own
    now = await chat.one("p_zrj_sec", "统计")  # this month: nothing reported yet
    assert now.startswith("### 统计：自然资源规划局 · 2026年12月")
    assert f"按时率近2个月：11月 {round(100 / zrj)}% · 12月 —" in now  # none due yet
    for text, name in (("统计 第五共同体", "第五党建共同体"), ("统计 交通运输局", "交通运输局")):
        no = await chat.one("p_zrj_ll1", text)
        assert f"您不能查看“{name}”的统计" in no and "联络员和书记可以查看本单位" in no
    async with chat.ledger() as s:
        refusals = await s.scalar(select(func.count()).where(AuditEntry.action == "refused:统计"))
    assert refusals == 3


UNITS_C5 = ("zjj", "zrj", "jtj", "slj", "cgj", "sthj", "gdb", "gjj")


async def test_publish_sends_each_community_its_ranking_once(chat: Chat) -> None:
    await november(chat)
    async with chat.ledger() as s:
        r = await report(s, NOV, DEC3)
        admin = await s.scalar(select(Person.id).where(Person.key == "p_admin_li"))
    c5 = next(c for c in r.communities if c.name == "第五党建共同体")
    before = len(chat.fake.sent)
    said = await chat.say("p_admin_li", "发布 月报", group=None)
    # The reply and the group post travel on different lanes: either may arrive first.
    mine = [m for m in chat.fake.sent[before:] if m.target == C5]  # the others are fakes' too
    posts = [m.text for m in mine]
    [done] = [text for text in said if text not in posts]
    assert done == "已发布 **2026年11月督办月报**：各共同体的统计和排名已发到 8 个共同体工作群。"
    assert len(mine) == 1 and len(said) == 2
    assert posts[0].startswith("### 第五党建共同体 2026年11月督办通报")
    assert f"本共同体在全部 8 个党建共同体中排第 {c5.rank} 名。" in posts[0]
    assert "1. 自然资源规划局：按时率 5%，迟报 1" in posts[0]
    assert "经机关工委审核发布（李慧敏）" in posts[0]
    async with chat.ledger() as s:
        rows = (await s.execute(select(ReportPublication))).scalars().all()
        assert [(p.kind, p.period, p.approved_by, p.approved_at) for p in rows] == [
            ("monthly", "2026-11", admin, DEC3)
        ]
        keys = (
            await s.scalars(
                select(OutboxMessage.dedupe_key)
                .where(OutboxMessage.kind == "publish")
                .order_by(OutboxMessage.dedupe_key)
            )
        ).all()
        assert keys == [f"publish:monthly:2026-11:c{i}" for i in range(1, 9)]
        audited = (
            await s.scalars(
                select(AuditEntry.entity_key).where(AuditEntry.action == "report.publish")
            )
        ).all()
        assert audited == ["monthly:2026-11"]
    again = await chat.one("p_admin_li", "发布 月报 2026-11", group=None)
    assert again.startswith("2026年11月督办月报已于 12月3日 10:00 由李慧敏发布")
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(ReportPublication)) == 1
        assert (await s.scalar(select(func.count()).where(OutboxMessage.kind == "publish"))) == 8
    # Published: the ranks now show in the community's group, and to its units.
    lead = await chat.one("p_zjj_ll1", "统计 上月")
    assert f"排名：在各共同体中第{c5.rank}名/8" in lead
    assert "**各单位**（按排名）" in lead and "- 1. 自然资源规划局" in lead
    zrj = next(u for u in r.ranking if u.short == "自然资源规划局")
    own = await chat.one("p_zrj_ll1", "统计 上月")
    assert f"排名：全委第{zrj.rank}名/58，第五党建共同体内第1名/8" in own


async def test_publish_refusals(chat: Chat) -> None:
    chat.clock.at = DEC3
    worker = await chat.one("p_zjj_ll1", "发布 月报")
    assert "“发布 月报”只有机关工委管理员可以使用" in worker
    current = await chat.one("p_admin_li", "发布月报 本月", group=None)
    assert current.startswith("2026年12月尚未结束，不能发布月报")
    quarter = await chat.one("p_admin_li", "publish 2026-Q4", group=None)
    assert "看不懂月份“2026-Q4”：月报按月发布。" in quarter and "发布 月报 [月份]" in quarter
    assert "看不懂月份" in await chat.one("p_admin_li", "发布 月报 下下下月", group=None)
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(ReportPublication)) == 0
        assert await s.scalar(select(func.count()).where(OutboxMessage.kind == "publish")) == 0


async def test_periods_and_scopes_as_people_write_them(chat: Chat) -> None:
    chat.clock.at = DEC3
    cases = {
        "统计　２０２６年１１月": "全委 · 2026年11月",  # full-width
        "统计十一月第五共同体": "第五党建共同体 · 2026年11月",
        "stats 2026-Q4 c5": "第五党建共同体 · 2026年第四季度",
        "统计数据 本年": "全委 · 2026年度",
        "统计 2026年第四季度 住建局": "住建局 · 2026年第四季度",
        "统计 四季度": "全委 · 2026年第四季度",
        "统计 上月 第五": "第五党建共同体 · 2026年11月",
        "统计 本季度": "全委 · 2026年第四季度",
        "统计 2026年": "全委 · 2026年度",
        "统计 11月": "全委 · 2026年11月",
        "统计": "全委 · 2026年12月",
    }
    for n, (text, heading) in enumerate(cases.items()):
        # Each reply carries a chart (two requests): read at a person's pace, not the
        # session webhook's 20 a minute.
        chat.clock.at = DEC3 + timedelta(minutes=n)
        reply = await chat.one("p_admin_li", text, group=None)
        assert reply.startswith(f"### 统计：{heading}"), (text, reply)
    quarter = await chat.one("p_admin_li", "统计 2026-Q4 c5", group=None)
    assert "按时率近1个季度：Q4 0%" in quarter
    two = await chat.one("p_admin_li", "统计 2026-11 2026-10", group=None)
    assert "一次只能查看一个期间。" in two and "统计 [期间] [共同体或单位]" in two
    unknown = await chat.one("p_admin_li", "统计 不存在局", group=None)
    assert "找不到共同体或单位“不存在局”" in unknown
    many = await chat.one("p_admin_li", "统计 局", group=None)
    assert "“局”对应多个单位" in many
    assert "申请绑定" in await chat.one("stranger", "统计")


async def test_stats_in_a_group_reply_there(chat: Chat) -> None:
    before = len(chat.fake.sent)
    await chat.one("p_zjj_ll1", "统计")
    assert [m.target for m in chat.fake.sent[before:]] == [C5]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11", ("2026-11", "")),
        ("十一月第五共同体", ("2026-11", "第五共同体")),
        ("2026年11月住建局", ("2026-11", "住建局")),
        ("２０２６年第四季度", ("2026-Q4", "")),
        ("四季度c5", ("2026-Q4", "c5")),
        ("上月", ("2026-10", "")),
        ("本年", ("2026", "")),
        ("住建局", (None, "住建局")),
        ("第五共同体", (None, "第五共同体")),
    ],
)
def test_split_period(text: str, expected: tuple[str | None, str]) -> None:
    period, rest = split_period(text, date(2026, 11, 2))
    assert (period.key if period else None, rest) == expected


async def test_a_month_without_tasks_is_not_published(chat: Chat) -> None:
    chat.clock.at = DEC3
    empty = await chat.one("p_admin_li", "发布 月报 2026-01", group=None)
    assert empty == "2026年1月没有应报任务，没有可发布的排名。发送 **统计 2026-01** 查看。"
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(ReportPublication)) == 0
