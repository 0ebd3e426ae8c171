"""Report figures against a hand-computed fixture: on time, late, overdue, excused, returned."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.deployment import load
from bot.ledger.stats import period_figures
from bot.models import CheckIn, Person, PlanTask, TaskInstance, Unit
from bot.render import Renderer
from bot.sync import sync
from jobs import monthly_report
from jobs.env import JobEnv
from tests.configs import ENV, mini, write

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI)


def day(d: int) -> datetime:
    return datetime(2026, 11, d, 23, 59, 59, tzinfo=SHANGHAI)


async def fixture(db: Database, tmp_path: Path) -> None:
    async with db.begin() as s:
        await sync(s, load(write(tmp_path, mini()), env=ENV).spec, NOW)
    async with db.begin() as s:
        unit = {u.key: u.id for u in (await s.scalars(select(Unit))).all()}
        task = {t.key: t.id for t in (await s.scalars(select(PlanTask))).all()}
        reporter = await s.scalar(select(Person.id).where(Person.key == "p_a_ll"))
        # (unit, task, period, due, status, check-in: None or (status, late))
        plan = [
            ("ua", "T01", "a", day(10), "accepted", ("accepted", False)),  # on time
            ("ua", "T02", "b", day(12), "submitted", ("submitted", True)),  # late
            ("ua", "T03", "c", day(14), "overdue", None),  # overdue
            ("ua", "T01", "d", day(16), "excused", None),  # excused
            ("ub", "T01", "e", day(30), "pending", None),  # not yet due
            ("ub", "T02", "f", day(20), "returned", ("returned", False)),  # returned, past due
            ("ub", "T03", "g", day(21), "submitted", ("submitted", False)),  # on time
            ("ub", "T01", "h", datetime(2026, 12, 1, tzinfo=SHANGHAI), "overdue", None),  # Dec
        ]
        for no, (u, t, period, due, status, report) in enumerate(plan, start=1):
            inst = TaskInstance(
                task_id=task[t],
                unit_id=unit[u],
                period=period,
                no=no,
                due_at=due,
                status=status,
                created_at=NOW,
                updated_at=NOW,
            )
            s.add(inst)
            await s.flush()
            if report:
                s.add(
                    CheckIn(
                        instance_id=inst.id,
                        reporter_id=reporter,
                        for_unit_id=unit[u],
                        text="x",
                        late=report[1],
                        status=report[0],
                        platform="console",
                        platform_msg_id=f"m{no}",
                        submitted_at=NOW,
                        updated_at=NOW,
                    )
                )


async def test_figures_per_unit_and_community(db: Database, tmp_path: Path) -> None:
    await fixture(db, tmp_path)
    async with db.begin() as s:
        [c1] = await period_figures(s, date(2026, 11, 1), date(2026, 11, 30), NOW)
    figures = {u.short: u.figures for u in c1.units}
    a, b = figures["甲局"], figures["乙局"]
    assert (a.assigned, a.on_time, a.late, a.overdue, a.excused, a.open) == (4, 1, 1, 1, 1, 0)
    assert (b.assigned, b.on_time, b.late, b.overdue, b.excused, b.open) == (3, 1, 0, 1, 0, 1)
    assert a.rate == 1 / 3 and b.rate == 1 / 3
    assert c1.figures.assigned == 7 and c1.figures.rate == 2 / 6
    assert [u.short for u in c1.units] == ["甲局", "乙局"]  # tie: fewer overdue, then order


async def test_monthly_report_goes_to_the_admins_once(db: Database, tmp_path: Path) -> None:
    await fixture(db, tmp_path)
    deployment = load(write(tmp_path, mini()), env=ENV)
    from bot.clock import FixedClock
    from bot.models import OutboxMessage

    first_workday = datetime(2026, 12, 1, 10, 0, tzinfo=SHANGHAI)
    env = JobEnv(db, deployment, FixedClock(first_workday), Renderer.for_config(deployment.root))
    assert await monthly_report.run(env, first_workday)
    assert not await monthly_report.run(env, first_workday)
    env.clock.at = first_workday + timedelta(hours=1)  # type: ignore[attr-defined]
    assert await monthly_report.run(env, first_workday + timedelta(hours=1))  # by hand
    async with db.begin() as s:
        bodies = (
            await s.scalars(
                select(OutboxMessage.body).where(OutboxMessage.kind == "monthly_report")
            )
        ).all()
    assert len(bodies) == 1  # one report per month whatever re-runs
    text = bodies[0]["body"]
    assert text.startswith("### 2026年11月督办月报")
    # By December the one not yet due on the 28th is overdue too.
    assert "**第一共同体**：应报 7，按时 2，迟报 1，逾期 3，免报 1，按时率 33%" in text
    assert "1. 甲局 33%" in text
