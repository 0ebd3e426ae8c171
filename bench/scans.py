"""Benchmark 3, scans: 督办, 督查, the other daily jobs and a unit's 本月任务 over 1,000,000
task instances.

    python bench/scans.py [--database URL] [--instances 1000000] [--days 5] [--probes 200]

Generates and applies the province (bench/province.py), bulk-loads the ledger
(bench/scans_data.py: executemany on SQLite, COPY on PostgreSQL), then, on each of ``--days``
consecutive working days from the first one after the 25th of this month, runs the real jobs
as scheduled: 提示 (jobs.remind) at 9:00, 调度 on a Monday or the 15th at 9:00, 督办
(jobs.supervise) at 9:30, 回头看 at 10:00, 月报 on the month's first working day at 10:00 and
督查 (jobs.inspect) at 17:30. Targets ≤ 2 s for 督办 and 督查; each job's line gives its time,
this process's CPU time and the most its RSS rose while the job ran. Between days 88% of what
falls due is reported (bench/scans_data.py); before the runs the database is put at rest
(SQLite checkpointed, PostgreSQL vacuumed and analysed).
Then 本月任务 for ``--probes`` units: the ledger query the handler makes
(bot.ledger.instances.unit_instances) and the whole command through the Dispatcher
(who-is lookup, query, render, reply queued, commit) — target ≤ 20 ms.
Baseline: ``SELECT count(*) FROM task_instances`` in the same run.

To compare two versions of the code on the same ledger: ``--prepare-only`` builds the
database and stops (SQLite: the file named by ``--database``; PostgreSQL: a new database,
kept, its URL printed); copy it (``cp``, or ``CREATE DATABASE b TEMPLATE a``) and run each
version on its own copy with ``--existing``, which uses the database as it is (configuration
applied, ledger loaded: neither is done again, nothing is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    RssSampler,
    backend,
    checkpoint_ended,
    current_rss_mb,
    fresh_database,
    last_checkpoint,
    load_average,
    machine,
    ms,
    peak_rss_mb,
    summary,
    timed,
)
from bench._copy import apply_or_copy
from bench.province import Shape, write_config

# The jobs the issue sets a time for (seconds); the others are timed beside them.
TARGETS = {"supervise": 2.0, "inspect": 2.0}


def _schedule(calendar: Any, day: date) -> list[tuple[str, dtime]]:
    """The jobs that fire on ``day`` by their built-in schedules (jobs/registry.py), read by
    the server's own parser, in the order of their times; not 月度分解, which
    bench/fanout.py measures on a month of its own."""
    from bot.clock import SHANGHAI
    from bot.schedules.parse import parse_schedule
    from jobs.registry import JOBS

    before = datetime.combine(day, dtime.min, SHANGHAI) - timedelta(microseconds=1)
    fires = [
        (at.time(), job.name)
        for job in JOBS
        if job.run is not None and job.name != "breakdown"
        for at in parse_schedule(job.default).next_fire_times(before, calendar, count=4)
        if at.date() == day
    ]
    fires.sort(key=lambda fire: fire[0])  # stable: jobs at the same time in registry order
    return [(name, at) for at, name in fires]


def _days(calendar: object, start: date, n: int) -> list[date]:
    out, day = [], start
    while len(out) < n:
        if calendar.is_workday(day):  # type: ignore[attr-defined]
            out.append(day)
        day += timedelta(days=1)
    return out


async def run(args: argparse.Namespace) -> None:
    from bot.deployment import load

    shape = Shape(args.units, args.per_community, args.members_per_unit)
    print(f"# scans: {machine()}")
    with tempfile.TemporaryDirectory(prefix="duban-province-") as tmp:
        conf = write_config(
            Path(tmp) / "conf",
            units=shape.units,
            per_community=shape.per_community,
            members_per_unit=shape.members_per_unit,
        )
        with timed() as t:
            loaded = load(conf, env={})
        print(
            f"province: {shape.units} units; config load {t[0]:.1f} s "
            f"({load_average()}, peak RSS {peak_rss_mb():.0f} MB)"
        )
    if args.existing:
        if not args.database:
            raise SystemExit("--existing needs --database")
        await _on(args, args.database, loaded, apply=False)
    else:
        async with fresh_database(args.database, keep=args.prepare_only) as url:
            await _on(args, url, loaded, apply=True)
    print(f"RSS at the end {current_rss_mb():.0f} MB; peak RSS: {peak_rss_mb():.0f} MB")


async def _on(args: argparse.Namespace, url: str, loaded: Any, *, apply: bool) -> None:
    from sqlalchemy.engine import make_url

    from bot import schema
    from bot.clock import SHANGHAI, FixedClock
    from bot.db import Database

    print(f"database: {backend(url)} {make_url(url).render_as_string(hide_password=True)}")
    db = Database(url)
    try:
        await schema.upgrade(db.engine)
        if apply:
            clock = FixedClock(datetime.now(SHANGHAI))
            with timed() as t:
                applied = await apply_or_copy(db, loaded, clock)
            print(f"config apply: {t[0]:.1f} s ({load_average()}) — {applied}")
        await measure(args, db, loaded)
    finally:
        await db.dispose()


async def measure(args: argparse.Namespace, db: Any, loaded: Any) -> None:
    """Load the ledger into ``db`` (configuration applied) and time the jobs and 本月任务."""
    from sqlalchemy import func, select

    from bench.scans_data import at_rest, seed
    from bot.app import YOUNG_GENERATION
    from bot.clock import SHANGHAI
    from bot.ledger.escalation import Ladder
    from bot.models import TaskInstance
    from bot.workdays import load_calendar

    today = datetime.now(SHANGHAI).date()
    async with db.begin() as s:
        calendar = await load_calendar(s)
    days = _days(calendar, today.replace(day=26), args.days)
    cycle = loaded.spec.cycle
    ladder = Ladder(cycle.escalate_to_secretary_workdays, cycle.escalate_to_admins_workdays)
    async with db.begin() as s:
        present = await s.scalar(select(func.count()).select_from(TaskInstance))
    if present:  # a database prepared earlier (to profile): use it as it is
        print(f"ledger: {present} instances already there")
    else:
        with timed() as t:
            seeded = await seed(db, args.instances, days[0], ladder)
        print(
            f"ledger: {seeded.instances} instances {seeded.statuses}, "
            f"{seeded.checkins} check-ins, {seeded.escalations} escalation steps, "
            f"{seeded.negative} negative-list entries; loaded in {t[0]:.1f} s "
            f"({seeded.instances / t[0]:.0f} instances/s)"
        )
    await at_rest(db)
    if args.prepare_only:
        print(f"prepared; stopping ({load_average()})")
        return
    # As `duban serve` does once started (bot/app.py): what start-up built, the province's
    # configuration above all, is frozen, so a job's full collections do not walk it, and the
    # youngest generation is collected every 20,000 objects, not 700. Unfrozen,
    # the four full collections of a heavy 督办 day cost 0.5 s of CPU here that the server
    # does not spend.
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
    # As the server does (bot/app.py): on SQLite the WAL is checkpointed every second beside
    # the writer. Without it, a commit that takes the WAL past its limit copies a job's writes
    # (113,400 reminders) into the file itself, and the 本月任务 that made it waits 100 ms.
    checkpoints = asyncio.create_task(db.keep_wal_short())
    try:
        await _jobs_and_tasks(args, db, loaded, calendar, days)
    finally:
        checkpoints.cancel()
    print(f"RSS now {current_rss_mb():.0f} MB, peak so far {peak_rss_mb():.0f} MB")


async def _jobs_and_tasks(
    args: argparse.Namespace, db: Any, loaded: Any, calendar: Any, days: list[date]
) -> None:
    from sqlalchemy import func, select

    from bench.scans_data import reports_arrive
    from bot.clock import SHANGHAI, FixedClock
    from bot.memory import giving_back
    from bot.models import JobRun, TaskInstance
    from bot.render import Renderer
    from jobs.env import JobEnv
    from jobs.registry import BY_NAME

    clock = FixedClock(datetime.combine(days[0], dtime(8, 0), SHANGHAI))
    counts = []
    for _ in range(5):
        async with db.begin() as s:
            with timed() as t:
                await s.scalar(select(func.count()).select_from(TaskInstance))
        counts.append(t[0])
    base, _ = summary(counts)
    print(f"baseline SELECT count(*) FROM task_instances: median {ms(base)} ({load_average()})")
    env = JobEnv(db, loaded, clock, Renderer.for_config(loaded.root))
    timings: dict[str, list[float]] = {}
    # The bench's own CPU time beside the wall time: on a shared machine it moves far less
    # with the load (it leaves out the PostgreSQL server's share of the work).
    print(f"{'day':<12}{'job':<16}{'time':>8}{'cpu':>8}{'RSS':>9}{'× count(*)':>12}  work done")
    for day in days:
        if day != days[0]:
            came = await reports_arrive(db, days[0], datetime.combine(day, dtime(17, 30), SHANGHAI))
            if came:
                print(
                    f"{day.isoformat():<12}(between days: {came} reports arrive and are accepted)"
                )
        for name, at in _schedule(calendar, day):
            occurrence = datetime.combine(day, at, SHANGHAI)
            clock.at = occurrence
            before = current_rss_mb()
            checkpoint = await last_checkpoint(db)
            cpu = time.process_time()
            with RssSampler() as rss, timed() as t:
                # As the server runs it (bot/app.py): then its garbage is collected.
                ran = await giving_back(BY_NAME[name].run(env, occurrence))  # type: ignore[misc]
            cpu = time.process_time() - cpu
            assert ran, f"{name} {occurrence} did not run"
            async with db.begin() as s:
                detail = await s.scalar(
                    select(JobRun.detail).where(JobRun.job == name, JobRun.occurrence == occurrence)
                )
            timings.setdefault(name, []).append(t[0])
            print(
                f"{day.isoformat():<12}{name:<16}{t[0]:>7.2f}s{cpu:>7.2f}s"
                f"{rss.peak - before:>+7.0f}MB{t[0] / base:>11.0f}×  {detail} ({load_average()}"
                f"{checkpoint_ended(checkpoint, await last_checkpoint(db))})"
            )
    for name, samples in timings.items():
        median, worst = summary(samples)
        verdict = ""
        if name in TARGETS:
            verdict = f" [target ≤ 2 s: {'OK' if worst <= TARGETS[name] else 'MISSED'}]"
        print(f"{name}: median {median:.2f} s, max {worst:.2f} s{verdict}")
    await tasks_probes(args, db, loaded, clock, days[0], base)


async def tasks_probes(
    args: argparse.Namespace, db: object, loaded: object, clock: object, day: date, base: float
) -> None:
    from sqlalchemy import select

    from bot.clock import SHANGHAI
    from bot.dispatch import Dispatcher, outbox_poster
    from bot.duerules import Period
    from bot.ledger.instances import unit_instances
    from bot.messages import ChatRef, Inbound
    from bot.models import Identity, Person, Role
    from bot.render import Renderer
    from handlers import build_router

    rng = random.Random(7)
    clock.at = datetime.combine(day, dtime(10, 0), SHANGHAI)  # type: ignore[attr-defined]
    month = Period.containing("monthly", day)
    async with db.begin() as s:  # type: ignore[attr-defined]
        liaisons = (
            await s.execute(
                select(Role.unit_id, Identity.platform, Identity.user_id, Person.name)
                .join(Identity, Identity.person_id == Role.person_id)
                .join(Person, Person.id == Role.person_id)
                .where(Role.role == "liaison")
            )
        ).all()
    picks = rng.sample(liaisons, min(args.probes, len(liaisons)))
    del liaisons  # the province's 20,000 rows: not the server's to walk in its collections
    sizes, query = [], []
    for unit_id, *_ in picks:
        async with db.begin() as s:  # type: ignore[attr-defined]
            with timed() as t:
                found = await unit_instances(s, unit_id, month)
        query.append(t[0])
        sizes.append(len(found))
    median, worst = summary(query)
    verdict = "OK" if worst <= 0.02 else "MISSED"
    print(
        f"本月任务 ledger query (unit_instances), {len(picks)} units, "
        f"{min(sizes)}–{max(sizes)} rows each: median {ms(median)}, max {ms(worst)} "
        f"[target ≤ 20 ms: {verdict}] ({median / base:.2f}× count(*))"
    )
    renderer = Renderer.for_config(loaded.root)  # type: ignore[attr-defined]
    await renderer.warm()  # as the server does once it is ready
    dispatch = Dispatcher(
        build_router(),
        db,
        loaded,
        renderer,
        clock,
        outbox_poster(loaded, clock),  # type: ignore[arg-type]
    )
    whole = []
    checkpoint = await last_checkpoint(db)
    for n, (_, platform, user_id, name) in enumerate(picks):
        msg = Inbound(
            platform=platform,
            event_id=f"bench-tasks-{n}",
            chat=ChatRef(platform, user_id, is_group=False),
            sender_id=user_id,
            sender_name=name,
            text="本月任务",
            received_at=clock.now(),  # type: ignore[attr-defined]
            source="dingtalk_http" if platform == "dingtalk" else "wecom_app",
        )
        with timed() as t:
            await dispatch(msg)
        whole.append(t[0])
    median, worst = summary(whole)
    verdict = "OK" if worst <= 0.02 else "MISSED"
    print(
        f"本月任务 whole command (Dispatcher: who-is, query, render, reply queued, commit): "
        f"median {ms(median)}, max {ms(worst)} [target ≤ 20 ms: {verdict}] ({load_average()}"
        f"{checkpoint_ended(checkpoint, await last_checkpoint(db))})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="SQLAlchemy URL; default a temporary SQLite file")
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--per-community", type=int, default=8)
    parser.add_argument("--members-per-unit", type=int, default=10)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="stop after loading the ledger, keeping the database (with --database)",
    )
    parser.add_argument(
        "--existing",
        action="store_true",
        help="use --database as it is: configuration applied and ledger loaded before",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
