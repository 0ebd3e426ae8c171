"""Which schedule each job follows, and the live scheduler kept in step with it.

The database is the truth: an admin's Schedule row overrides the configuration's default, which
overrides the built-in one (jobs.registry). Jobs live only in APScheduler's in-memory job store
and are rebuilt from the rows on every start (`apply_all`), so nothing is pickled and a change
made by command survives restarts. A change reaches the live scheduler only once the
transaction that stored it has committed: a refused or failed command changes nothing.

A row whose expression is empty only pauses the job: it keeps following the configuration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.clock import Clock
from bot.db import Database
from bot.deployment import Loaded
from bot.models import JobRun, Schedule
from bot.routing import Ctx, UserError
from bot.schedules import ScheduleError, ScheduleSpec, parse_schedule
from bot.workdays import WorkCalendar, load_calendar
from jobs.registry import JOBS, Job

log = logging.getLogger(__name__)
Source = Literal["admin", "config", "built-in"]
RunJob = Callable[[str, datetime], Awaitable[None]]  # job name, the occurrence it runs for
SCHEDULING = "scheduling"  # its key in the dispatcher's services
_LOOKBACK = (timedelta(hours=1), timedelta(days=2), timedelta(days=40), timedelta(days=9 * 366))
_BATCH = 500


class CalendarHolder:
    """The working-day calendar in force. Triggers read it at every call; after an admin's 工作日
    change commits, it is replaced whole (a WorkCalendar never changes)."""

    def __init__(self, calendar: WorkCalendar, base: WorkCalendar | None = None) -> None:
        self.calendar = calendar
        self.base = base  # the published arrangement overrides apply to; None: the package's

    def __call__(self) -> WorkCalendar:
        return self.calendar


@dataclass(frozen=True, slots=True)
class Effective:
    job: Job
    expression: str  # as the admin, the configuration or the registry wrote it
    source: Source
    paused: bool
    spec: ScheduleSpec
    next_times: tuple[datetime, ...]  # the next five, paused or not

    @property
    def runnable(self) -> bool:
        return self.job.run is not None


class JobNotReady(Exception):
    """The job's body comes with the cycle feature; running it now would do nothing."""


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction has committed; never on rollback.

    The data is safe by then, so a failing action is logged, not raised into the commit."""

    def run(_session: Any) -> None:
        try:
            action()
        except Exception:
            log.exception("after-commit action %s failed", getattr(action, "__name__", action))

    event.listen(session.sync_session, "after_commit", run, once=True)


class Scheduling:
    def __init__(
        self,
        db: Database,
        scheduler: AsyncIOScheduler,
        deployment: Loaded,
        clock: Clock,
        calendar: CalendarHolder,
        run_job: RunJob,
        *,
        jobs: Sequence[Job] = JOBS,
        misfire_grace_seconds: int = 3600,
    ) -> None:
        self.db, self.scheduler, self.deployment, self.clock = db, scheduler, deployment, clock
        self.calendar, self.run_job, self.misfire_grace = calendar, run_job, misfire_grace_seconds
        self.jobs = {job.name: job for job in jobs}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- reading -------------------------------------------------------------------------------

    async def effective(self, session: AsyncSession) -> list[Effective]:
        rows = {r.job: r for r in (await session.scalars(select(Schedule))).all()}
        now = self.clock.now()
        return [self._effective(job, rows.get(name), now) for name, job in self.jobs.items()]

    async def effective_one(self, session: AsyncSession, job: Job) -> Effective:
        return self._effective(job, await session.get(Schedule, job.name), self.clock.now())

    def _effective(self, job: Job, row: Schedule | None, now: datetime) -> Effective:
        expression, source, spec = self._resolve(job, row)
        times = tuple(spec.next_fire_times(now, self.calendar(), 5))
        return Effective(job, expression, source, bool(row and row.paused), spec, times)

    def _resolve(self, job: Job, row: Schedule | None) -> tuple[str, Source, ScheduleSpec]:
        candidates: list[tuple[str, Source]] = [(job.default, "built-in")]
        if configured := self.deployment.spec.schedules.get(job.name):
            candidates.insert(0, (configured, "config"))
        if row is not None and row.expression:
            candidates.insert(0, (row.expression, "admin"))
        for expression, source in candidates[:-1]:
            try:
                return expression, source, parse_schedule(expression)
            except ScheduleError as e:  # the row was valid when stored; the config is checked
                log.warning("%s schedule of %s unreadable, falling back: %s", source, job.name, e)
        return job.default, "built-in", parse_schedule(job.default)

    def occurrence(self, job: str, at: datetime) -> datetime | None:
        """The latest time at or before `at` when `job` was due by its current schedule: what a
        run at `at` stands for. None when it was never due within nine years."""
        found = self.scheduler.get_job(job)
        spec = getattr(found.trigger, "spec", None) if found else None
        if not isinstance(spec, ScheduleSpec):
            return None
        calendar = self.calendar()
        for window in _LOOKBACK:
            start, latest = at - window, None
            while True:
                times = spec.next_fire_times(start, calendar, _BATCH)
                past = [t for t in times if t <= at]
                latest = past[-1] if past else latest
                if len(past) < _BATCH:
                    break
                start = past[-1]
            if latest is not None:
                return latest
        return None

    # -- the live scheduler --------------------------------------------------------------------

    async def apply_all(self) -> None:
        """Every job onto the scheduler as the database and configuration say; before start."""
        async with self.db.begin() as session:
            current = await self.effective(session)
        for eff in current:
            self._add(eff)

    def _add(self, eff: Effective) -> None:
        self.scheduler.add_job(
            self._fire,
            trigger=eff.spec.trigger(self.calendar),
            args=[eff.job.name],
            id=eff.job.name,
            name=eff.job.label,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=self.misfire_grace,
            **({"next_run_time": None} if eff.paused else {}),
        )

    def _install(self, eff: Effective) -> None:
        name = eff.job.name
        if self.scheduler.get_job(name) is None:
            self._add(eff)
            return
        self.scheduler.reschedule_job(name, trigger=eff.spec.trigger(self.calendar))
        if eff.paused:
            self.scheduler.pause_job(name)
        log.info("job %s now %s%s", name, eff.spec.describe(), " (paused)" if eff.paused else "")

    def _refresh_all(self) -> None:
        """Recompute every running job's next fire time, e.g. after the calendar changed."""
        if self.scheduler.state == STATE_STOPPED:
            return  # pending jobs compute theirs on start
        for job in self.scheduler.get_jobs():
            if job.id in self.jobs and job.next_run_time is not None:
                self.scheduler.reschedule_job(job.id, trigger=job.trigger)

    async def _fire(self, job: str) -> None:
        now = self.clock.now()
        await self._run(job, self.occurrence(job, now) or now)

    async def _run(self, job: str, occurrence: datetime) -> None:
        try:
            await self.run_job(job, occurrence)
        except Exception:
            log.exception("job %s for %s failed", job, occurrence.isoformat())

    # -- changes by command --------------------------------------------------------------------

    async def set(
        self, session: AsyncSession, job: Job, expression: str, actor: str, now: datetime
    ) -> Effective:
        """Raises ScheduleError (its .reason is for the admin) when the expression is wrong."""
        spec = parse_schedule(expression)
        return await self._store(session, job, actor, now, "set", expression=spec.describe())

    async def pause(self, session: AsyncSession, job: Job, actor: str, now: datetime) -> Effective:
        return await self._store(session, job, actor, now, "pause", paused=True)

    async def resume(self, session: AsyncSession, job: Job, actor: str, now: datetime) -> Effective:
        return await self._store(session, job, actor, now, "resume", paused=False)

    async def reset(self, session: AsyncSession, job: Job, actor: str, now: datetime) -> Effective:
        """Back to the configuration's default (or the built-in one), running."""
        return await self._store(session, job, actor, now, "reset", expression="", paused=False)

    async def _store(
        self,
        session: AsyncSession,
        job: Job,
        actor: str,
        now: datetime,
        action: str,
        *,
        expression: str | None = None,
        paused: bool | None = None,
    ) -> Effective:
        row = await session.get(Schedule, job.name)
        before = self._effective(job, row, now)
        new_expression = (row.expression if row else "") if expression is None else expression
        new_paused = (row.paused if row else False) if paused is None else paused
        if not new_expression and not new_paused:
            if row is not None:
                await session.delete(row)
            row = None
        elif row is None:
            row = Schedule(job=job.name, expression=new_expression, paused=new_paused)
            row.updated_by, row.updated_at = actor, now
            session.add(row)
        else:
            row.expression, row.paused = new_expression, new_paused
            row.updated_by, row.updated_at = actor, now
        await session.flush()
        after = self._effective(job, row, now)
        audit.record(
            session,
            at=now,
            actor=actor,
            action=f"schedule.{action}",
            entity="schedule",
            key=job.name,
            before=_state(before),
            after=_state(after),
        )
        after_commit(session, lambda: self._install(after))
        return after

    async def reload_calendar(self, session: AsyncSession) -> WorkCalendar:
        """After a 工作日 change in this session: the calendar with it, put in force (and every
        job's next fire time recomputed) once the change commits."""
        fresh = await load_calendar(session, self.calendar.base)

        def swap() -> None:
            self.calendar.calendar = fresh
            self._refresh_all()

        after_commit(session, swap)
        return fresh

    # -- running by hand -----------------------------------------------------------------------

    def run_after_commit(self, session: AsyncSession, job: Job) -> None:
        """Start `job` once the asking command has committed, as its own occurrence at that
        moment (the posts' per-period deduplication keys keep it from repeating a scheduled
        run's messages). Raises JobNotReady for a job without a body yet."""
        if not self.runnable(job):
            raise JobNotReady(job.name)
        loop = asyncio.get_running_loop()

        def start() -> None:
            task = loop.create_task(self.run_now(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        after_commit(session, start)

    def runnable(self, job: Job) -> bool:
        known = self.jobs.get(job.name)
        return known is not None and known.run is not None

    async def run_now(self, job: Job) -> None:
        if not self.runnable(job):
            raise JobNotReady(job.name)
        await self._run(job.name, self.clock.now())

    async def catch_up(self, grace: timedelta) -> list[str]:
        """After downtime: for each job, the latest occurrence that should have run within
        `grace` and did not, run once now (late; the job says so where it matters). Older
        misses stay missed: a week-old reminder helps nobody. Returns the jobs run."""
        now = self.clock.now()
        ran: list[str] = []
        for job in self.jobs.values():
            found = self.scheduler.get_job(job.name)
            if job.run is None or found is None or found.next_run_time is None:
                continue  # no body yet, or paused
            occurrence = self.occurrence(job.name, now)
            if occurrence is None or now - occurrence > grace:
                continue
            async with self.db.begin() as session:
                done = await session.scalar(
                    select(JobRun.id).where(JobRun.job == job.name, JobRun.occurrence == occurrence)
                )
            if done is None:
                log.warning(
                    "job %s missed its %s run: running it now", job.name, occurrence.isoformat()
                )
                await self._run(job.name, occurrence)
                ran.append(job.name)
        return ran

    async def drain(self) -> None:
        """Wait for runs started by hand (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _state(eff: Effective) -> dict[str, Any]:
    return {"expression": eff.spec.describe(), "source": eff.source, "paused": eff.paused}


def services(ctx: Ctx) -> Mapping[str, object]:
    """The long-lived objects the dispatcher hands commands (Ctx.services), by name."""
    found = getattr(ctx, "services", None)
    return found if isinstance(found, Mapping) else {}


def scheduling_for(ctx: Ctx) -> Scheduling:
    found = services(ctx).get(SCHEDULING)
    if not isinstance(found, Scheduling):
        raise UserError("errors/schedules_unavailable.md.j2")
    return found


def optional_scheduling(ctx: Ctx) -> Scheduling | None:
    found = services(ctx).get(SCHEDULING)
    return found if isinstance(found, Scheduling) else None
