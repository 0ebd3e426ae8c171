"""Benchmark 2, fan-out: the province's monthly breakdown, from configuration to every group.

    python bench/fanout.py [--database URL] [--units 20000] [--window 60]

1. Generates the province (bench/province.py), loads it as ``duban config check`` does and
   applies it to a fresh database as ``duban config apply`` does.
2. Runs the real 月度分解 job (jobs.registry) with a FixedClock at 09:00 on the current
   month's first working day: it materialises the month and renders every community's post
   into the outbox. Target ≤ 10 s. Two baselines, each rolled back: the very rows the job
   wrote (instances and outbox) written again straight through the driver (COPY on
   PostgreSQL, executemany on SQLite), and copied again by the database itself (INSERT …
   SELECT from a temporary table, no row through Python: the engine's own floor), into the
   same tables, indexes and foreign keys.
3. Starts FakeWeCom and FakeDingTalk (tests/fakes) in a child process, each honouring 20
   requests per robot in a rolling ``--window`` seconds, and runs the real DeliveryWorker
   (bot/delivery) against them until every row is sent. Ideal: per robot, requests beyond the
   first 20 wait a window per 20; the busiest robot sets the bound. Baseline: the same number
   of bare HTTP POSTs to the fake at the worker's concurrency.

If ``config apply`` fails on PostgreSQL (it did above 32,767 people; see bench/_copy.py), the
run applies it to a temporary SQLite file and copies the ledger over, and says so.

``--window`` changes both sides at once (the fakes' window and the worker's limiter), never
one alone; the default is the platforms' 60 s.

To compare two versions of the breakdown on the same ledger: ``--prepare-only --database
URL`` applies the configuration and stops (on PostgreSQL it keeps the database it created and
prints its name); then run each version on its own copy with ``--existing --no-deliver``,
which uses the database as it is. The breakdown's line gives wall time, this process's CPU time
and the highest RSS sampled during the job (every 5 ms) above what the process held before it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    ROOT,
    RssSampler,
    backend,
    current_rss_mb,
    fresh_database,
    load_average,
    machine,
    peak_rss_mb,
    timed,
)
from bench._copy import apply_or_copy
from bench.province import Shape, write_config

FAKE_APP_KEY, FAKE_APP_SECRET = "ding-bench-app", "ding-bench-secret"
WECOM_CORP, WECOM_SECRET, AIBOT_ID, AIBOT_SECRET = "ww-bench", "wecom-bench-secret", "aibot", "s"


# --- the fake platforms, in their own process ------------------------------------------------


def serve_fakes(out: Path, shape: Shape, window: float) -> None:
    """Child process: both fakes on free ports, every generated robot and group registered."""
    from aiohttp import web

    from tests.fakes import FakeDingTalk, FakeWeCom

    wecom = FakeWeCom(
        corpid=WECOM_CORP,
        corpsecret=WECOM_SECRET,
        aibot_id=AIBOT_ID,
        aibot_secret=AIBOT_SECRET,
        rate_window=window,
    )
    ding = FakeDingTalk(app_key=FAKE_APP_KEY, app_secret=FAKE_APP_SECRET, rate_window=window)
    wecom.add_robot("bench-admins-key")
    for c in range(shape.communities):
        platform, channel = shape.channel_of(c)
        chat = f"wrkBench{c:06d}" if platform == "wecom" else f"cidBench{c:06d}=="
        if channel == "wecom_webhook":
            wecom.add_robot(f"bench-wecom-key-{c:04d}")
        elif channel == "wecom_appchat":
            wecom.add_appchat(chat)
        elif channel == "dingtalk_webhook":
            ding.add_robot(f"bench-ding-token-{c:04d}", secret=f"SECbench{c:04d}")
        elif channel == "dingtalk_openapi":
            ding.add_group(chat)

    async def stats(request: web.Request) -> web.Response:
        fake = request.app["fake"]
        by_status = Counter(
            str(c.response.get("errcode", c.status))
            if isinstance(c.response, dict)
            else str(c.status)
            for c in fake.calls
            if not c.path.startswith("/_bench")
        )
        per_target = Counter(m.target for m in fake.sent)
        return web.json_response(
            {
                "sent": len(fake.sent),
                "answers": by_status,
                "busiest": max(per_target.values(), default=0),
            }
        )

    async def echo(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def main() -> None:
        urls = {}
        runners = []
        for name, fake in (("wecom", wecom), ("dingtalk", ding)):
            fake.app["fake"] = fake
            fake.app.router.add_get("/_bench/stats", stats)
            fake.app.router.add_post("/_bench/echo", echo)
            runner = web.AppRunner(fake.app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            fake.base_url = urls[name] = f"http://127.0.0.1:{port}"
            runners.append(runner)
        out.write_text(json.dumps(urls))  # noqa: ASYNC240 (once, before serving)
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the benchmark -------------------------------------------------------------------------


async def first_workday(db: Any, today: date) -> date:
    from bot.workdays import load_calendar

    async with db.begin() as s:
        calendar = await load_calendar(s)
    day = today.replace(day=1)
    while not calendar.is_workday(day):
        day += timedelta(days=1)
    return day


async def baseline_insert(db: Any) -> tuple[float, int]:
    """The storage floor: the rows the job wrote (instances and outbox), deleted and written
    again the fastest way the driver allows (COPY on PostgreSQL, executemany on SQLite), into
    the same tables with the same indexes, in one transaction that is then rolled back."""
    from typing import cast

    from sqlalchemy import Table, delete, select

    from bot.bulk import insert_rows
    from bot.models import OutboxMessage, TaskInstance

    async with db.sessions() as s:
        saved = []
        for model in (TaskInstance, OutboxMessage):
            table = cast(Table, model.__table__)
            names = [c.name for c in table.columns if c.name != "id"]
            rows = [tuple(r) for r in await s.execute(select(*(table.c[n] for n in names)))]
            saved.append((table, names, rows))
            await s.execute(delete(model))
        started = time.perf_counter()
        for table, names, rows in saved:
            await insert_rows(s, table, names, rows)
        await s.flush()
        elapsed = time.perf_counter() - started
        await s.rollback()
    return elapsed, sum(len(rows) for _, _, rows in saved)


async def baseline_in_database(db: Any) -> tuple[float, float, int]:
    """The engine's own floor: the rows the job wrote, copied aside into a temporary table,
    deleted, then written again by one INSERT … SELECT per table (no row passes through
    Python) into the same tables, indexes and foreign keys; rolled back. Wall and CPU seconds
    (the CPU is this process's: SQLite's work, none of a PostgreSQL server's)."""
    from sqlalchemy import Table, delete, text

    from bot.models import OutboxMessage, TaskInstance

    elapsed = cpu = 0.0
    count = 0
    async with db.sessions() as s:
        for model in (TaskInstance, OutboxMessage):
            table: Table = model.__table__
            names = ", ".join(c.name for c in table.columns if c.name != "id")
            aside = f"bench_{table.name}"
            await s.execute(text(f"CREATE TEMPORARY TABLE {aside} AS SELECT * FROM {table.name}"))
            count += await s.scalar(text(f"SELECT count(*) FROM {aside}")) or 0
            await s.execute(delete(model))
            started, used = time.perf_counter(), time.process_time()
            await s.execute(
                text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {aside} ORDER BY id")
            )
            await s.flush()
            elapsed += time.perf_counter() - started
            cpu += time.process_time() - used
        await s.rollback()
    return elapsed, cpu, count


async def lane_costs(db: Any, loaded: Any, now: datetime) -> dict[str, int]:
    """Requests each group's queued posts will take (the worker's own estimate)."""
    from sqlalchemy import select

    from bot.delivery.limits import requests_for
    from bot.delivery.resolve import resolve
    from bot.models import OutboxMessage
    from bot.outbox import message_from_json

    costs: Counter[str] = Counter()
    async with db.begin() as s:
        for row in (await s.scalars(select(OutboxMessage))).all():
            route = resolve(row, loaded, now)
            message = message_from_json(row.body)
            costs[row.channel] += requests_for(message, route.destination.channel_type)
    return dict(costs)


async def bare_posts(base: str, count: int, concurrency: int, body: bytes) -> float:
    import aiohttp

    queue = iter(range(count))
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            for _ in queue:
                async with http.post(f"{base}/_bench/echo", data=body) as r:
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - started


async def deliver(args: argparse.Namespace, db: Any, loaded: Any, urls: dict[str, str]) -> None:
    import aiohttp
    from pydantic import SecretStr
    from sqlalchemy import func, select

    from bot.adapters.wecom_send import HttpBotTransport
    from bot.clock import SystemClock
    from bot.delivery import DeliveryWorker
    from bot.delivery.limits import RollingLimiter
    from bot.metrics import Metrics
    from bot.models import OutboxMessage
    from bot.senders import build_senders
    from bot.settings import Settings

    settings = Settings(
        wecom_api_base=urls["wecom"],
        wecom_corp_id=WECOM_CORP,
        wecom_secret=SecretStr(WECOM_SECRET),
        dingtalk_api_base=urls["dingtalk"],
        dingtalk_oapi_base=urls["dingtalk"],
        dingtalk_app_key=FAKE_APP_KEY,
        dingtalk_app_secret=SecretStr(FAKE_APP_SECRET),
    )
    clock = SystemClock()
    async with db.begin() as s:
        total = await s.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    costs = await lane_costs(db, loaded, clock.now())
    admin_key = loaded.spec.committee.admin_group or ""
    heaviest = max(costs.values())
    per_group = Counter(v for k, v in costs.items() if k != admin_key)
    ideal = math.ceil(heaviest / 20 - 1) * args.window if heaviest > 20 else 0.0
    print(
        "  requests per community group: "
        + ", ".join(f"{n} groups × {c}" for c, n in sorted(per_group.items()))
        + f"; admins' group: {costs.get(admin_key, 0)}"
    )
    print(f"  ideal by the worker's estimate (20 per {args.window:g} s a robot): {ideal:.0f} s")
    async with aiohttp.ClientSession() as http:
        transport = HttpBotTransport(
            http, api_base=urls["wecom"], bot_id=AIBOT_ID, secret=AIBOT_SECRET
        )
        senders = build_senders(settings, http, clock, aibot_transport=transport)
        worker = DeliveryWorker(db, senders, loaded, clock, metrics=Metrics())
        worker.limiter = RollingLimiter(window=timedelta(seconds=args.window))
        started = time.perf_counter()
        runner = asyncio.create_task(worker.run())
        groups_done: float | None = None
        while True:
            await asyncio.sleep(0.5)
            async with db.begin() as s:
                left = dict(
                    (
                        await s.execute(
                            select(OutboxMessage.channel, func.count())
                            .where(OutboxMessage.status.in_(("pending", "sending")))
                            .group_by(OutboxMessage.channel)
                        )
                    ).all()
                )
            if groups_done is None and not (set(left) - {admin_key}):
                groups_done = time.perf_counter() - started
                print(f"  every community group delivered: {groups_done:.1f} s ({load_average()})")
            if not left:
                break
            if time.perf_counter() - started > args.deadline:
                print(f"  GAVE UP after {args.deadline} s; left: {left}")
                break
        elapsed = time.perf_counter() - started
        await worker.stop(5)
        runner.cancel()
        async with db.begin() as s:
            states = dict(
                (
                    await s.execute(
                        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                    )
                ).all()
            )
        accepted, busiest = 0, 0
        answers: Counter[str] = Counter()
        for base in urls.values():
            async with http.get(f"{base}/_bench/stats") as r:
                got = await r.json()
            accepted += got["sent"]
            busiest = max(busiest, got["busiest"])
            answers.update(got["answers"])
        # The bound from what the busiest robot really accepted (the estimate above errs high).
        ideal = math.ceil(busiest / 20 - 1) * args.window if busiest > 20 else 0.0
        bare = await bare_posts(urls["wecom"], sum(answers.values()), 8, b'{"msgtype":"text"}')
    print(f"  delivered {states} of {total} rows in {elapsed:.1f} s ({load_average()})")
    print(
        f"  platform side: {accepted} messages accepted, {sum(answers.values())} requests, "
        f"answers {dict(answers)}; the busiest robot accepted {busiest}: ideal {ideal:.0f} s"
    )
    print(
        f"  baseline: {sum(answers.values())} bare POSTs at concurrency 8: {bare:.2f} s; "
        f"community groups took {((groups_done or elapsed) / bare):.1f}× that; "
        f"everything {elapsed:.0f} s vs ideal {ideal:.0f} s"
    )


async def run(args: argparse.Namespace) -> None:
    from sqlalchemy.engine import make_url

    from bot import schema
    from bot.clock import SHANGHAI, FixedClock
    from bot.db import Database
    from bot.deployment import load
    from bot.render import Renderer
    from jobs.env import JobEnv
    from jobs.registry import BY_NAME

    shape = Shape(args.units, args.per_community, args.members_per_unit)
    print(f"# fan-out: {machine()}")
    with tempfile.TemporaryDirectory(prefix="duban-province-") as tmp:
        with timed() as t:
            conf = write_config(
                Path(tmp) / "conf",
                units=shape.units,
                per_community=shape.per_community,
                members_per_unit=shape.members_per_unit,
            )
        print(
            f"province: {shape.units} units, {shape.communities} groups, "
            f"{shape.units * shape.members_per_unit} members; generated in {t[0]:.1f} s"
        )
        with timed() as t:
            loaded = load(conf, env={})
        print(
            f"config load (config check): {t[0]:.1f} s  "
            f"({load_average()}, peak RSS {peak_rss_mb():.0f} MB)"
        )
        if args.existing and not args.database:
            raise SystemExit("--existing needs --database")
        keep = args.prepare_only or args.existing
        async with fresh_database(None if args.existing else args.database, keep=keep) as url:
            url = args.database if args.existing else url
            print(f"database: {backend(url)} {make_url(url).render_as_string(hide_password=True)}")
            db = Database(url)
            try:
                await schema.upgrade(db.engine)
                today = datetime.now(SHANGHAI).date()
                day = await first_workday(db, today)
                occurrence = datetime.combine(day, dtime(9, 0), SHANGHAI)
                clock = FixedClock(occurrence)
                if not args.existing:
                    with timed() as t:
                        applied = await apply_or_copy(db, loaded, clock)
                    print(f"config apply (sync): {t[0]:.1f} s  ({load_average()}) — {applied}")
                if args.prepare_only:
                    print(f"prepared; stopping ({load_average()})")
                    return
                env = JobEnv(db, loaded, clock, Renderer.for_config(loaded.root))
                before, cpu = current_rss_mb(), time.process_time()
                with RssSampler() as rss, timed() as t:
                    ran = await BY_NAME["breakdown"].run(env, occurrence)  # type: ignore[misc]
                cpu = time.process_time() - cpu
                assert ran
                from sqlalchemy import func, select

                from bot.models import OutboxMessage, TaskInstance

                async with db.begin() as s:
                    instances = await s.scalar(select(func.count()).select_from(TaskInstance))
                    rows = await s.scalar(select(func.count()).select_from(OutboxMessage))
                verdict = "OK" if t[0] <= 10 else "MISSED"
                print(
                    f"breakdown {day:%Y-%m} (materialise + render + enqueue): {t[0]:.2f} s "
                    f"[target ≤ 10 s: {verdict}], CPU {cpu:.2f} s  ({load_average()}) — "
                    f"{instances} instances, {rows} outbox rows; RSS {before:.0f} MB before, "
                    f"+{rss.peak - before:.0f} MB at most during the job"
                )
                base, n = await baseline_insert(db)
                print(
                    f"  baseline: the same {n} rows written straight through the driver "
                    f"(the storage floor): {base:.2f} s; the job took {t[0] / base:.1f}× that"
                )
                engine, engine_cpu, n = await baseline_in_database(db)
                print(
                    f"  baseline: the same {n} rows copied by the database itself (INSERT … "
                    f"SELECT from a temporary table): {engine:.2f} s, CPU {engine_cpu:.2f} s; "
                    f"the job took {t[0] / engine:.1f}× that"
                )
                print(f"  RSS now {current_rss_mb():.0f} MB, peak so far {peak_rss_mb():.0f} MB")
                if not args.no_deliver:
                    await fakes_and_deliver(args, shape, db, loaded)
            finally:
                await db.dispose()
    print(f"RSS at the end {current_rss_mb():.0f} MB; peak RSS: {peak_rss_mb():.0f} MB")


async def fakes_and_deliver(args: argparse.Namespace, shape: Shape, db: Any, loaded: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ports = Path(tmp) / "urls.json"
        child = subprocess.Popen(  # noqa: ASYNC220 (a server that outlives this call)
            [
                sys.executable,
                __file__,
                "--serve-fakes",
                str(ports),
                "--units",
                str(shape.units),
                "--per-community",
                str(shape.per_community),
                "--window",
                str(args.window),
            ],
            cwd=ROOT,
        )
        try:
            for _ in range(600):
                if ports.exists() and ports.read_text():
                    break
                await asyncio.sleep(0.05)
            urls = json.loads(ports.read_text())
            print(f"delivery to the fakes (20 requests per robot per {args.window:g} s):")
            await deliver(args, db, loaded, urls)
        finally:
            child.terminate()
            child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="SQLAlchemy URL; default a temporary SQLite file")
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--per-community", type=int, default=8)
    parser.add_argument("--members-per-unit", type=int, default=10)
    parser.add_argument("--window", type=float, default=60.0, help="rate window, both sides")
    parser.add_argument("--deadline", type=float, default=900.0, help="give up delivery after")
    parser.add_argument("--no-deliver", action="store_true")
    parser.add_argument(
        "--prepare-only", action="store_true", help="apply the configuration, keep it, stop"
    )
    parser.add_argument(
        "--existing", action="store_true", help="use --database as it is (prepared earlier)"
    )
    parser.add_argument("--serve-fakes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes:
        shape = Shape(args.units, args.per_community, args.members_per_unit)
        serve_fakes(args.serve_fakes, shape, args.window)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
