"""Report figures against a hand-computed fixture built through the ledger's own functions:
on time, late (days counted), overdue, excused, returned and resubmitted, returned past the
deadline, withdrawn, problems found, closed and open; month, quarter, year and the trend."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.deployment import Deployment, load
from bot.duerules import Period
from bot.ledger import checkins, problem_admin, publication, reviews
from bot.ledger.matrix import status_matrix
from bot.ledger.stats import Figures, Report, period_figures, report, trend
from bot.models import (
    CheckIn,
    Community,
    OutboxMessage,
    Person,
    PlanTask,
    TaskInstance,
    Unit,
)
from bot.outbox import message_from_json
from bot.render import Renderer
from bot.sync import sync
from jobs import monthly_report
from jobs.env import JobEnv
from tests.configs import ENV, mini, write

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI)
FIELDS = (
    "assigned",
    "on_time",
    "late",
    "overdue",
    "excused",
    "open",
    "days_late",
    "problems_found",
    "problems_closed",
    "problems_open",
)


def at(month: int, day: int, hour: int = 23, minute: int = 59, *, year: int = 2026) -> datetime:
    second = 59 if (hour, minute) == (23, 59) else 0
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def config() -> dict[str, Any]:
    data = mini()
    data["people"] += [
        {"id": "p_c_ll", "name": "丙联络员", "dingtalk": "staff_c_ll"},
        {"id": "p_d_ll", "name": "丁联络员", "dingtalk": "staff_d_ll"},
        {"id": "p_e_ll", "name": "戊联络员", "dingtalk": "staff_e_ll"},
    ]
    data["units"] += [
        {"id": "uc", "name": "丙局机关党委", "short": "丙局", "liaisons": ["p_c_ll"]},
        {"id": "ud", "name": "丁局机关党委", "short": "丁局", "liaisons": ["p_d_ll"]},
        {"id": "ue", "name": "戊局机关党委", "short": "戊局", "liaisons": ["p_e_ll"]},
    ]
    data["groups"].append(
        {
            "id": "g_c2",
            "name": "第二共同体群",
            "platform": "dingtalk",
            "chat_id": "cidC2==",
            "channel": {"type": "dingtalk_openapi"},
        }
    )
    data["communities"].append(
        {"id": "c2", "name": "第二共同体", "lead": "uc", "members": ["uc", "ud"], "group": "g_c2"}
    )
    for key, title in (("T04", "党费收缴"), ("T05", "中心组学习")):
        data["tasks"].append(
            {
                "id": key,
                "title": title,
                "area": "organizational",
                "cadence": "monthly",
                "due": "每月25日前",
                "owners": "all",
            }
        )
    return data


@dataclass
class Built:
    deployment: Deployment
    unit: dict[str, int]
    task: dict[str, int]
    community: dict[str, int]
    instance: dict[int, int]  # fixture number → instance id


# (number, unit, task, period, due)
INSTANCES = [
    (1, "ua", "T01", "2026-11", at(11, 10)),
    (2, "ua", "T02", "2026-Q4", at(11, 12)),
    (3, "ua", "T03", "2026", at(11, 14)),
    (4, "ua", "T04", "2026-11", at(11, 16)),
    (5, "ub", "T01", "2026-11", at(11, 30)),
    (6, "ub", "T02", "2026-Q4", at(11, 20)),
    (7, "ub", "T03", "2026", at(11, 21)),
    (8, "ub", "T04", "2026-11", at(11, 30)),
    (9, "uc", "T01", "2026-11", at(11, 25)),
    (10, "uc", "T02", "2026-Q4", at(11, 5)),
    (11, "uc", "T03", "2026", at(11, 3, 12, 0)),
    (12, "ud", "T01", "2026-11", at(11, 25)),
    (13, "ue", "T01", "2026-11", at(11, 8)),
    (14, "ua", "T01", "2026-10", at(10, 25)),
    (15, "uc", "T01", "2026-10", at(10, 25)),
    (16, "ub", "T01", "2026-12", at(12, 10)),
    (17, "ua", "T01", "2026-03", at(3, 25)),
    (18, "ua", "T01", "2025-12", at(12, 25, year=2025)),
    (19, "ua", "T01", "2025-11", at(11, 25, year=2025)),
]

# What happens to them, in time order: (when, action, number, argument)
EVENTS: list[tuple[datetime, str, int, str]] = [
    (at(11, 20, 9, 0, year=2025), "report", 19, ""),
    (at(12, 20, 9, 0, year=2025), "report", 18, ""),
    (at(4, 2, 10, 0), "report", 17, ""),  # 8 days late
    (at(10, 20, 9, 0), "report", 14, ""),
    (at(11, 3, 18, 0), "report", 11, ""),  # after a noon deadline, same day: 1 day late
    (at(11, 5, 8, 0), "report", 10, ""),
    (at(11, 7, 9, 0), "report", 13, ""),
    (at(11, 7, 10, 0), "withdraw", 13, ""),  # withdrawn: overdue
    (at(11, 9, 10, 0), "report", 1, ""),
    (at(11, 10, 9, 0), "accept", 1, ""),
    (at(11, 10, 9, 30), "excuse", 4, "外出培训"),
    (at(11, 10, 9, 40), "excuse", 12, "机构调整"),
    (at(11, 15, 9, 0), "report", 2, ""),  # 3 days late
    (at(11, 18, 9, 0), "report", 7, ""),
    (at(11, 19, 9, 0), "return", 7, "缺照片"),
    (at(11, 19, 10, 0), "report", 6, ""),
    (at(11, 19, 15, 0), "return", 6, "内容不全"),  # never resubmitted: overdue after the 20th
    (at(11, 23, 8, 0), "report", 7, ""),  # resubmitted after the deadline: 2 days late
    (at(11, 26, 0, 0), "report", 9, ""),  # one minute past the deadline: 1 day late
    (at(11, 26, 9, 0), "report", 8, ""),
    (at(11, 27, 9, 0), "accept", 9, ""),
    (at(11, 27, 10, 0), "return", 8, "补充材料"),  # returned, not yet due
]

# (unit, found, deadline, closed)
PROBLEMS = [
    ("ua", at(10, 20, 10, 0), at(11, 15), at(11, 14, 10, 0)),
    ("ua", at(11, 5, 10, 0), at(11, 30), None),
    ("ub", at(9, 10, 10, 0), at(10, 10), at(11, 20, 10, 0)),
    ("uc", at(11, 1, 10, 0), at(12, 15), None),
    ("ud", at(11, 27, 10, 0), at(11, 28, 10, 0), at(11, 28, 9, 0)),
]


async def build(db: Database, tmp_path: Path, data: dict[str, Any] | None = None) -> Built:
    deployment = load(write(tmp_path / "conf", data or config()), env=ENV)
    async with db.begin() as s:
        await sync(s, deployment.spec, NOW)
    async with db.begin() as s:
        unit = {u.key: u.id for u in (await s.scalars(select(Unit))).all()}
        task = {t.key: t.id for t in (await s.scalars(select(PlanTask))).all()}
        community = {c.key: c.id for c in (await s.scalars(select(Community))).all()}
        admin = await s.scalar(select(Person.id).where(Person.key == "p_admin"))
        assert admin is not None
        instances: dict[int, TaskInstance] = {}
        for number, u, t, period, due in INSTANCES:
            inst = TaskInstance(
                task_id=task[t],
                unit_id=unit[u],
                period=period,
                no=number,
                due_at=due,
                created_at=due - timedelta(days=30),
                updated_at=due - timedelta(days=30),
            )
            s.add(inst)
            instances[number] = inst
        await s.flush()
        await apply(s, instances, admin)
        for u, found, deadline, closed in PROBLEMS:
            problem = await problem_admin.create(
                s,
                unit_id=unit[u],
                description="检查发现的问题",
                deadline=deadline,
                created_by=admin,
                now=found,
                actor="test",
            )
            if closed is not None:
                await problem_admin.close(s, problem, note="已整改", now=closed, actor="test")
        ids = {n: i.id for n, i in instances.items()}
    return Built(deployment, unit, task, community, ids)


async def apply(s: AsyncSession, instances: dict[int, TaskInstance], admin: int) -> None:
    last: dict[int, int] = {}  # instance number → check-in id
    for n, (when, action, number, arg) in enumerate(EVENTS):
        inst = instances[number]
        if action == "report":
            done = await checkins.record(
                s,
                inst,
                reporter_id=admin,
                for_unit_id=inst.unit_id,
                on_behalf=False,
                text="已完成",
                media=(),
                platform="console",
                msg_id=f"m{n}",
                now=when,
                actor="test",
            )
            await s.flush()  # record() leaves the insert to the commit; the id is needed now
            last[number] = done.checkin.id
        elif action == "withdraw":
            assert await checkins.withdraw(s, inst, now=when, actor="test") is not None
        elif action == "excuse":
            await reviews.excuse(s, inst, reason=arg, now=when, actor="test")
        else:
            await reviews.decide(
                s,
                last[number],
                decision=action,
                reason=arg,
                reviewer_id=admin,
                now=when,
                actor="test",
            )
        await s.flush()


def numbers(f: Figures) -> tuple[int, ...]:
    return tuple(getattr(f, name) for name in FIELDS)


def figures(**kw: int) -> tuple[int, ...]:
    return numbers(Figures(**kw))


# November, hand-computed (NOW is the 28th at noon).
NOV = {
    "甲局": figures(
        assigned=4,
        on_time=1,
        late=1,
        overdue=1,
        excused=1,
        days_late=3,
        problems_found=2,
        problems_closed=1,
        problems_open=1,
    ),
    "乙局": figures(assigned=4, late=1, overdue=1, open=2, days_late=2),
    "丙局": figures(assigned=3, on_time=1, late=2, days_late=2, problems_open=1),
    "丁局": figures(assigned=1, excused=1, problems_found=1, problems_closed=1),
    "戊局": figures(assigned=1, overdue=1),
}


async def test_month_per_unit_community_and_committee(db: Database, tmp_path: Path) -> None:
    await build(db, tmp_path)
    async with db.begin() as s:
        r = await report(s, Period.parse("2026-11"), NOW)
    units = {u.short: u for u in r.ranking}
    assert {short: numbers(u.figures) for short, u in units.items()} == NOV
    a, b, c = units["甲局"].figures, units["乙局"].figures, units["丙局"].figures
    assert (a.rate, a.avg_days_late, a.closure_rate) == (1 / 3, 3.0, 0.5)
    assert (b.rate, b.avg_days_late, b.closure_rate) == (0.0, 2.0, None)
    assert (c.rate, c.avg_days_late) == (1 / 3, 1.0)
    assert units["丁局"].figures.rate is None  # owed nothing: all excused
    # Overall: 丙局 beats 甲局 on overdue; 戊局 beats 乙局 on days late; 丁局 owed nothing.
    assert [(u.short, u.rank) for u in r.ranking] == [
        ("丙局", 1),
        ("甲局", 2),
        ("戊局", 3),
        ("乙局", 4),
        ("丁局", None),
    ]
    ranks = [
        (c.name, c.rank, [(u.short, u.community_rank) for u in c.units]) for c in r.communities
    ]
    assert ranks == [
        ("第一共同体", 2, [("甲局", 1), ("乙局", 2)]),
        ("第二共同体", 1, [("丙局", 1), ("丁局", None)]),
        ("未编入共同体", None, [("戊局", 1)]),
    ]
    c1, c2, none = (c.figures for c in r.communities)
    assert numbers(c1) == figures(
        assigned=8,
        on_time=1,
        late=2,
        overdue=2,
        excused=1,
        open=2,
        days_late=5,
        problems_found=2,
        problems_closed=1,
        problems_open=1,
    )
    assert numbers(c2) == figures(
        assigned=4,
        on_time=1,
        late=2,
        excused=1,
        days_late=2,
        problems_found=1,
        problems_closed=1,
        problems_open=1,
    )
    assert numbers(none) == NOV["戊局"]
    assert (c1.rate, c2.rate) == (1 / 5, 1 / 3)  # the two not yet due are not judged
    total = Figures()
    for f in (c1, c2, none):
        total.add(f)
    assert (
        numbers(r.committee)
        == numbers(total)
        == figures(
            assigned=13,
            on_time=2,
            late=4,
            overdue=3,
            excused=2,
            open=2,
            days_late=7,
            problems_found=3,
            problems_closed=2,
            problems_open=2,
        )
    )
    assert r.committee.rate == 2 / 9 and r.committee.avg_days_late == 7 / 4


async def test_quarter_and_year(db: Database, tmp_path: Path) -> None:
    await build(db, tmp_path)
    async with db.begin() as s:
        q4 = await report(s, Period.parse("2026-Q4"), NOW)
        year = await report(s, Period.parse("2026"), NOW)
    q = {u.short: numbers(u.figures) for u in q4.ranking}
    assert q == {
        "甲局": figures(
            assigned=5,
            on_time=2,
            late=1,
            overdue=1,
            excused=1,
            days_late=3,
            problems_found=2,
            problems_closed=1,
            problems_open=1,
        ),
        "乙局": figures(
            assigned=5,
            late=1,
            overdue=1,
            open=3,
            days_late=2,
            problems_found=1,
            problems_closed=1,
        ),
        "丙局": figures(
            assigned=4,
            on_time=1,
            late=2,
            overdue=1,
            days_late=2,
            problems_found=1,
            problems_open=1,
        ),
        "丁局": NOV["丁局"],
        "戊局": NOV["戊局"],
    }
    assert [u.short for u in q4.ranking] == ["甲局", "丙局", "戊局", "乙局", "丁局"]
    assert q4.period.label == "2026年第四季度"
    y = {u.short: numbers(u.figures) for u in year.ranking}
    assert y["甲局"] == figures(
        assigned=6,
        on_time=2,
        late=2,
        overdue=1,
        excused=1,
        days_late=11,
        problems_found=2,
        problems_closed=1,
        problems_open=1,
    )
    assert {k: v for k, v in y.items() if k != "甲局"} == {
        k: v for k, v in q.items() if k != "甲局"
    }
    ua = next(u for u in year.ranking if u.short == "甲局").figures
    assert ua.avg_days_late == 5.5 and ua.rate == 2 / 5
    # 2026: 甲局 2/5 beats 丙局 1/4.
    assert [u.short for u in year.ranking] == ["甲局", "丙局", "戊局", "乙局", "丁局"]


async def test_trend_over_twelve_months_and_quarters(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    async with db.begin() as s:
        months = await trend(s, Period.parse("2026-11"), NOW)
        c1 = await trend(s, Period.parse("2026-11"), NOW, community_id=built.community["c1"])
        ua = await trend(s, Period.parse("2026-11"), NOW, 3, unit_id=built.unit["ua"])
        quarters = await trend(s, Period.parse("2026-Q4"), NOW, 4)
        nov = await report(s, Period.parse("2026-11"), NOW)
    assert [p.key for p, _ in months] == [
        "2025-12",
        *(f"2026-{m:02d}" for m in range(1, 12)),
    ]  # 2025-11 is a thirteenth month: left out
    got = {p.key: numbers(f) for p, f in months if any(numbers(f))}
    assert got == {
        "2025-12": figures(assigned=1, on_time=1),
        "2026-03": figures(assigned=1, late=1, days_late=8),
        "2026-09": figures(problems_open=1),  # found 9-10, not yet closed
        "2026-10": figures(
            assigned=2,
            on_time=1,
            overdue=1,
            problems_found=1,
            problems_closed=1,
            problems_open=2,
        ),
        "2026-11": numbers(nov.committee),
    }
    assert numbers(c1[-1][1]) == numbers(nov.communities[0].figures)
    assert numbers(c1[-2][1]) == figures(
        assigned=1, on_time=1, problems_found=1, problems_closed=1, problems_open=2
    )
    assert [(p.key, numbers(f)) for p, f in ua] == [
        ("2026-09", figures()),
        ("2026-10", figures(assigned=1, on_time=1, problems_open=1)),
        ("2026-11", NOV["甲局"]),
    ]
    assert [p.key for p, _ in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert [numbers(f) for _, f in quarters] == [
        figures(assigned=1, late=1, days_late=8),
        figures(),
        figures(problems_open=1),
        numbers((await _report(db, "2026-Q4")).committee),
    ]


async def _report(db: Database, key: str) -> Report:
    async with db.begin() as s:
        return await report(s, Period.parse(key), NOW)


async def test_period_figures_keeps_unit_order(db: Database, tmp_path: Path) -> None:
    await build(db, tmp_path)
    nov = Period.parse("2026-11")
    async with db.begin() as s:
        communities = await period_figures(s, nov.first_day, nov.last_day, NOW)
    assert [(c.name, [u.short for u in c.units]) for c in communities] == [
        ("第一共同体", ["甲局", "乙局"]),
        ("第二共同体", ["丙局", "丁局"]),
        ("未编入共同体", ["戊局"]),
    ]
    assert numbers(communities[0].units[0].figures) == NOV["甲局"]


async def test_no_instances_at_all(db: Database, tmp_path: Path) -> None:
    deployment = load(write(tmp_path / "conf", config()), env=ENV)
    async with db.begin() as s:
        await sync(s, deployment.spec, NOW)
        r = await report(s, Period.parse("2026-11"), NOW)
        t = await trend(s, Period.parse("2026"), NOW, 3)
    assert r.committee == Figures() and r.committee.rate is None
    assert [u.rank for u in r.ranking] == [None] * 5
    assert [c.rank for c in r.communities] == [None, None, None]
    assert [(p.key, f) for p, f in t] == [
        ("2024", Figures()),
        ("2025", Figures()),
        ("2026", Figures()),
    ]


async def test_monthly_report_goes_to_the_admins_once(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    first_workday = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)
    clock = FixedClock(first_workday)
    env = JobEnv(db, built.deployment, clock, Renderer.for_config(built.deployment.root))
    assert await monthly_report.run(env, first_workday)
    assert not await monthly_report.run(env, first_workday)
    clock.at = first_workday + timedelta(hours=1)
    assert await monthly_report.run(env, first_workday + timedelta(hours=1))  # by hand
    async with db.begin() as s:
        posts = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "monthly_report"))
        ).all()
    # The draft, then its second chart: no community group before 发布.
    assert [p.channel for p in posts] == ["g_admins", "g_admins"]
    draft, second = (message_from_json(p.body) for p in posts)
    assert draft.image is not None and draft.image.startswith(b"\x89PNG")  # by community
    assert second.image is not None and second.image.startswith(b"\x89PNG")  # the trend
    assert second.body == "2026年11月督办月报（图2）" and second.image != draft.image
    text = posts[0].body["body"]
    assert text.startswith("### 2026年11月督办月报（待发布）")
    # By December the two not yet due on the 28th are overdue too.
    assert "- **第一共同体**（第2名）：应报 8，按时 1，迟报 2，逾期 4，免报 1，按时率 14%" in text
    assert "平均迟报 2.5 天" in text
    assert "1. 丙局 33%" in text
    assert "发布 月报 2026-11" in text


async def test_a_bounded_number_of_queries(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        sizes = []
        for n in (3, 12, 24):
            statements.clear()
            async with db.begin() as s:
                await trend(s, Period.parse("2026-11"), NOW, n, unit_id=built.unit["ua"])
            sizes.append(len(statements))
        statements.clear()
        async with db.begin() as s:
            await report(s, Period.parse("2026"), NOW)
        whole = len(statements)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    # instances, their number (the check below), problems found, problems open: whatever the count
    assert sizes == [4, 4, 4]
    assert whole == 6  # and the units and communities


async def test_the_draft_says_when_it_was_published(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    renderer = Renderer.for_config(built.deployment.root)
    published = datetime(2026, 12, 2, 9, 30, tzinfo=SHANGHAI)
    async with db.begin() as s:
        admin = await s.scalar(select(Person.id).where(Person.key == "p_admin"))
        assert admin is not None
        await publication.publish(
            s, "monthly", "2026-11", approved_by=admin, now=published, actor="t"
        )
        r = await report(s, Period.parse("2026-11"), published)
        text = await monthly_report.render(renderer, s, r)
        again = None
        try:
            await publication.publish(
                s, "monthly", "2026-11", approved_by=admin, now=NOW, actor="t"
            )
        except publication.AlreadyPublished as e:
            again = e.publication
    assert text.startswith("### 2026年11月督办月报（已发布）")
    assert "已于 12月2日 09:30 发布到各共同体群。" in text
    assert again == publication.Publication("monthly", "2026-11", "王工委", published)


def test_add_sums_every_count() -> None:
    names = [f.name for f in fields(Figures)]
    total = Figures(**{n: i for i, n in enumerate(names, start=1)})
    total.add(Figures(**dict.fromkeys(names, 100)))
    assert numbers(total) == tuple(100 + i for i in range(1, len(names) + 1))
    assert tuple(names) == FIELDS


async def test_a_second_reported_checkin_counts_its_instance_once(
    db: Database, tmp_path: Path
) -> None:
    """Two people reporting one instance at the same moment may leave two reported check-ins
    (nothing in the schema forbids it): the figures fall back to folding them."""
    built = await build(db, tmp_path)
    async with db.begin() as s:
        first = await s.scalar(select(CheckIn).where(CheckIn.instance_id == built.instance[2]))
        assert first is not None
        twin = {c.key: getattr(first, c.key) for c in CheckIn.__table__.columns if c.key != "id"}
        s.add(CheckIn(**{**twin, "platform_msg_id": "twin", "late": False}))
    async with db.begin() as s:
        r = await report(s, Period.parse("2026-11"), NOW)
        t = await trend(s, Period.parse("2026-11"), NOW, 2, unit_id=built.unit["ua"])
        m = await status_matrix(s, Period.parse("2026-11"), NOW)
    assert {u.short: numbers(u.figures) for u in r.ranking} == NOV
    assert numbers(t[-1][1]) == NOV["甲局"]
    assert m.cells[(built.unit["ua"], built.task["T02"])].state == "late"
