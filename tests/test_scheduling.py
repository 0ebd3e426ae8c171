"""The schedules service against a real database and a real (paused) APScheduler: which
expression wins, what reaches the live scheduler and when, restarts, the calendar, runs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.deployment import Loaded, load
from bot.models import AuditEntry, Schedule
from bot.schedules import ScheduleError, ScheduleTrigger, parse_schedule
from bot.scheduling import CalendarHolder, JobNotReady, Scheduling, after_commit
from bot.workdays import WorkCalendar, set_day
from jobs.env import JobEnv
from jobs.registry import BY_NAME, JOBS, Job, find_job
from tests.configs import ENV, SAMPLE_CONFIG, mini, write

CAL = WorkCalendar.official().published_through(2026)  # 2027 stays unpublished
START = datetime(2026, 9, 28, 10, 0, tzinfo=SHANGHAI)  # the Monday before National Day


class Harness:
    def __init__(self, db: Database, deployment: Loaded) -> None:
        self.db, self.deployment = db, deployment
        self.clock = FixedClock(START)
        self.calendar = CalendarHolder(CAL, base=CAL)
        self.runs: list[tuple[str, datetime]] = []
        self.schedulers: list[AsyncIOScheduler] = []

    async def record(self, job: str, occurrence: datetime) -> None:
        self.runs.append((job, occurrence))

    async def start(self, misfire: int = 600) -> Scheduling:
        """A process start: a fresh scheduler and service, jobs applied, then started."""
        scheduler = AsyncIOScheduler(timezone=SHANGHAI)
        self.schedulers.append(scheduler)
        # Every job with a body of its own, except 回头看, which has none.
        jobs = [
            dataclasses.replace(job, run=_body if job.name != "recheck" else None) for job in JOBS
        ]
        scheduling = Scheduling(
            self.db,
            scheduler,
            self.deployment,
            self.clock,
            self.calendar,
            self.record,
            jobs=jobs,
            misfire_grace_seconds=misfire,
        )
        await scheduling.apply_all()
        scheduler.start(paused=True)
        return scheduling


async def _body(env: JobEnv, occurrence: datetime) -> bool:  # stands for the cycle's
    return True


@pytest.fixture
async def harness(db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    conf = mini()
    conf["schedules"] = {"remind": "工作日 8:45"}
    loaded = load(write(tmp_path / "conf", conf), env=ENV)
    # An expression the configuration check would refuse, as if it had slipped past it.
    schedules = {"remind": "工作日 8:45", "dispatch": "隔三差五"}
    spec = loaded.spec.model_copy(update={"schedules": schedules})
    h = Harness(db, dataclasses.replace(loaded, spec=spec))
    yield h
    for scheduler in h.schedulers:
        if scheduler.running:
            scheduler.shutdown(wait=False)


def job(name: str) -> Job:
    found = find_job(name)
    assert found is not None
    return found


def fires(*stamps: str) -> tuple[datetime, ...]:
    return tuple(datetime.fromisoformat(s).replace(tzinfo=SHANGHAI) for s in stamps)


def test_registry_holds_the_seven_jobs_with_the_sample_defaults() -> None:
    sample = load(SAMPLE_CONFIG, live=False).spec.schedules
    assert [j.label for j in JOBS] == ["月度分解", "提示", "调度", "督查", "督办", "回头看", "月报"]
    assert {j.name: j.default for j in JOBS} == sample
    assert find_job("提示") is find_job("REMIND") is BY_NAME["remind"]
    assert (
        find_job("monthly report") is find_job("ｍｏｎｔｈｌｙ-report") is BY_NAME["monthly_report"]
    )
    assert find_job("提醒") is None


async def test_admin_row_overrides_config_overrides_built_in(harness: Harness) -> None:
    scheduling = await harness.start()
    async with harness.db.begin() as s:
        s.add(Schedule(job="inspect", expression="每天 18:00", updated_at=START))
    async with harness.db.begin() as s:
        found = {e.job.name: e for e in await scheduling.effective(s)}
    assert [e for e in found] == [j.name for j in JOBS]
    assert (found["inspect"].source, found["inspect"].expression) == ("admin", "每天 18:00")
    assert (found["remind"].source, found["remind"].spec.describe()) == (
        "config",
        "每个工作日 8:45",
    )
    assert found["remind"].next_times == fires(
        "2026-09-29 08:45", "2026-09-30 08:45", "2026-10-08 08:45", "2026-10-09 08:45",
        "2026-10-10 08:45",  # 国庆节调休: a Saturday at work
    )  # fmt: skip
    # An unreadable configured expression falls back to the built-in one instead of failing.
    assert (found["dispatch"].source, found["dispatch"].expression) == (
        "built-in",
        "每周一及每月15日 9:00",
    )
    assert found["breakdown"].source == "built-in"
    assert not any(e.paused for e in found.values())


async def test_apply_all_puts_every_job_on_the_scheduler(harness: Harness) -> None:
    async with harness.db.begin() as s:
        s.add(Schedule(job="supervise", expression="", paused=True, updated_at=START))
    before = datetime.now(SHANGHAI) - timedelta(seconds=1)
    scheduling = await harness.start(misfire=900)
    scheduler = scheduling.scheduler
    assert sorted(j.id for j in scheduler.get_jobs()) == sorted(j.name for j in JOBS)
    for name in ("remind", "breakdown"):
        live = scheduler.get_job(name)
        assert isinstance(live.trigger, ScheduleTrigger)
        assert (live.coalesce, live.max_instances, live.misfire_grace_time) == (True, 1, 900)
        assert live.next_run_time in live.trigger.spec.next_fire_times(before, CAL, 2)
    assert str(scheduler.get_job("remind").trigger) == "每个工作日 8:45"
    assert scheduler.get_job("supervise").next_run_time is None  # paused


async def test_a_change_reaches_the_scheduler_on_commit_and_survives_restart(
    harness: Harness,
) -> None:
    scheduling = await harness.start()
    old = scheduling.scheduler.get_job("remind").next_run_time
    async with harness.db.begin() as s:
        eff = await scheduling.set(s, job("remind"), "每周一８点半", "p_admin", START)
        assert eff.source == "admin" and eff.spec.describe() == "每周一 8:30"
        assert str(scheduling.scheduler.get_job("remind").trigger) == "每个工作日 8:45"  # not yet
    live = scheduling.scheduler.get_job("remind")
    assert str(live.trigger) == "每周一 8:30"
    assert live.next_run_time.weekday() == 0 and live.next_run_time.strftime("%H:%M") == "08:30"
    assert live.next_run_time != old
    async with harness.db.begin() as s:
        row = await s.get(Schedule, "remind")
        assert (row.expression, row.paused, row.updated_by) == ("每周一 8:30", False, "p_admin")
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "schedule.set"))
    assert entry.before == {"expression": "每个工作日 8:45", "source": "config", "paused": False}
    assert entry.after == {"expression": "每周一 8:30", "source": "admin", "paused": False}
    restarted = await harness.start()
    assert str(restarted.scheduler.get_job("remind").trigger) == "每周一 8:30"


async def test_a_rolled_back_change_changes_nothing(harness: Harness) -> None:
    scheduling = await harness.start()
    with pytest.raises(RuntimeError):
        async with harness.db.begin() as s:
            await scheduling.set(s, job("remind"), "每天 7:00", "p_admin", START)
            raise RuntimeError("the command failed after storing")
    assert str(scheduling.scheduler.get_job("remind").trigger) == "每个工作日 8:45"
    async with harness.db.begin() as s:
        assert await s.get(Schedule, "remind") is None
        with pytest.raises(ScheduleError, match="没有25点"):
            await scheduling.set(s, job("remind"), "每天 25:00", "p_admin", START)
        assert await s.get(Schedule, "remind") is None


async def test_pause_resume_and_reset(harness: Harness) -> None:
    scheduling = await harness.start()
    scheduler, actor = scheduling.scheduler, "p_admin"
    async with harness.db.begin() as s:
        eff = await scheduling.pause(s, job("remind"), actor, START)
    assert (eff.paused, eff.source) == (True, "config")  # pausing keeps following the config
    assert scheduler.get_job("remind").next_run_time is None
    async with harness.db.begin() as s:
        assert (await s.get(Schedule, "remind")).expression == ""
        await scheduling.set(s, job("remind"), "工作日 10:00", actor, START)
    assert scheduler.get_job("remind").next_run_time is None  # a new time stays paused
    async with harness.db.begin() as s:
        eff = await scheduling.resume(s, job("remind"), actor, START)
    assert (eff.paused, eff.spec.describe()) == (False, "每个工作日 10:00")
    assert scheduler.get_job("remind").next_run_time.strftime("%H:%M") == "10:00"
    async with harness.db.begin() as s:
        await scheduling.pause(s, job("remind"), actor, START)
        eff = await scheduling.reset(s, job("remind"), actor, START)
        assert await s.get(Schedule, "remind") is None
    assert (eff.source, eff.paused, eff.spec.describe()) == ("config", False, "每个工作日 8:45")
    assert str(scheduler.get_job("remind").trigger) == "每个工作日 8:45"
    assert scheduler.get_job("remind").next_run_time is not None
    async with harness.db.begin() as s:
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions == [
        "schedule.pause", "schedule.set", "schedule.resume", "schedule.pause", "schedule.reset",
    ]  # fmt: skip


async def test_a_calendar_change_moves_the_next_fire_time(harness: Harness) -> None:
    scheduling = await harness.start()
    today = datetime.now(SHANGHAI).date()
    day = CAL.next_workday(today)
    first = scheduling.scheduler.get_job("remind").next_run_time
    async with harness.db.begin() as s:
        await set_day(s, day, False, "p_admin", START, note="临时调整", base=CAL)
        fresh = await scheduling.reload_calendar(s)
        assert not fresh.is_workday(day) and harness.calendar().is_workday(day)  # not yet
    assert not harness.calendar().is_workday(day)
    assert harness.calendar().status(day).note == "临时调整"
    moved = scheduling.scheduler.get_job("remind").next_run_time
    assert moved.date() != day and moved >= first
    assert harness.calendar().is_workday(moved.date())


async def test_run_now_after_commit_and_the_scheduled_occurrence(harness: Harness) -> None:
    scheduling = await harness.start()
    async with harness.db.begin() as s:
        scheduling.run_after_commit(s, job("inspect"))
        assert harness.runs == []  # nothing runs inside the asking transaction
    await scheduling.drain()
    assert harness.runs == [("inspect", START)]  # a run by hand is its own occurrence
    with pytest.raises(RuntimeError):
        async with harness.db.begin() as s:
            scheduling.run_after_commit(s, job("inspect"))
            raise RuntimeError("refused")
    await scheduling.drain()
    assert len(harness.runs) == 1
    assert not scheduling.runnable(job("recheck"))
    with pytest.raises(JobNotReady):
        await scheduling.run_now(job("recheck"))
    # The scheduler calls the job with no arguments of its own: the occurrence it runs for
    # is the latest due time by its schedule, 08:45 even when the loop was late.
    harness.clock.at = datetime(2026, 9, 29, 8, 47, 3, tzinfo=SHANGHAI)
    live = scheduling.scheduler.get_job("remind")
    await live.func(*live.args)
    assert harness.runs[-1] == ("remind", datetime(2026, 9, 29, 8, 45, tzinfo=SHANGHAI))


@pytest.mark.parametrize(
    ("expression", "at", "expected"),
    [
        ("工作日 8:45", "2026-10-05 12:00", "2026-09-30 08:45"),  # over National Day
        ("每月第一个工作日 9:00", "2026-10-20 00:00", "2026-10-08 09:00"),
        ("* * * * *", "2026-10-20 10:00:30", "2026-10-20 10:00"),
        ("* * 1,2 * *", "2026-11-04 12:00", "2026-11-02 23:59"),  # beyond one batch
        ("每年2月29日 9:00", "2026-10-20 00:00", "2026-02-28 09:00"),  # month end
        ("0 9 29 2 *", "2026-10-20 00:00", "2024-02-29 09:00"),  # cron skips
    ],
)
async def test_occurrence_is_the_latest_due_time(
    harness: Harness, expression: str, at: str, expected: str
) -> None:
    scheduling = await harness.start()
    async with harness.db.begin() as s:
        await scheduling.set(s, job("remind"), expression, "p_admin", START)
    when = datetime.fromisoformat(at).replace(tzinfo=SHANGHAI)
    assert scheduling.occurrence("remind", when) == fires(expected)[0]
    assert parse_schedule(expression)  # the form itself is valid


async def test_after_commit_failures_are_logged_not_raised(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("boom")

    async with db.begin() as s:
        s.add(Schedule(job="remind", expression="每天 8:00", updated_at=START))
        after_commit(s, broken)
    assert "after-commit action broken failed" in caplog.text
    async with db.begin() as s:
        assert (await s.get(Schedule, "remind")) is not None  # the commit went through
