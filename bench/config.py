"""The province's configuration: load, `config apply`, and `duban serve` start-up (issue 8).

    python bench/config.py                                   # SQLite, a temporary file
    python bench/config.py --database postgresql+asyncpg://postgres@127.0.0.1:55432/postgres
    python bench/config.py --units 2000 --steps load,apply,again

Each step runs `duban` as a child process and reports its wall time and peak RSS (the child's
VmHWM from /proc, read until it exits; for `serve`, just before it is stopped):

- ``load``: `duban config check` (read and validate, nothing else);
- ``apply``: `duban config apply` on an empty database;
- ``again``: `config apply` again, nothing changed;
- ``one``: `config apply` after one person's name changed;
- ``mass``: `config apply` after every name changed (people, units, communities), then the
  audit entries it wrote and the largest one, in characters;
- ``floor``: in a second empty database, the same units, communities, people, accounts and
  roles written straight through bot/bulk.py in one transaction (no reading, no comparing, no
  audit): what the database itself needs, the floor for ``apply``;
- ``serve``: `duban serve` twice on the applied configuration (the first start materialises
  the month's instances; the second is a restart with nothing changed): seconds until
  /readyz answers 200, peak RSS until then, RSS after ``--idle`` seconds idle.

The scheduler is off in `serve` (``--scheduler`` turns it on): a first start's catch-up runs
would measure the jobs, not the configuration. ``--console`` serves the local console too
(delivery to it, as bench/inbound.py runs) and asks once for its directory of every person
before reading the idle RSS. ``--steps serve`` alone starts on an empty database: the first
start then syncs the whole configuration itself, as bench/inbound.py's does. The load average
is printed beside each step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, backend, fresh_database, load_average, machine
from inbound_proc import free_port

STEPS = ("load", "floor", "apply", "again", "serve", "one", "mass")


@dataclass
class Figure:
    step: str
    seconds: float
    peak_mb: float
    load: str
    note: str = ""

    def row(self) -> str:
        return (
            f"| {self.step} | {self.seconds:.1f} s | {self.peak_mb:,.0f} MB | {self.load} "
            f"| {self.note} |"
        )


def _env(database_url: str, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
    env.update(
        DUBAN_DATABASE_URL=database_url,
        DUBAN_CONFIG=str(config),
        DUBAN_DELIVERY="platform",  # nothing is sent: no scheduler, no messages
        DUBAN_LOG_LEVEL="INFO",
        **extra,
    )
    return env


def run(step: str, args: list[str], env: dict[str, str]) -> tuple[Figure, str]:
    """One `duban …` to its end: wall time and the child's peak RSS.

    The peak is the child's VmHWM, read every 20 ms until it exits: wait4's ru_maxrss would
    also count this process's own memory, which the child shares between fork and exec."""
    load = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        peak = 0.0
        while proc.poll() is None:
            with contextlib.suppress(OSError):  # gone between poll and read
                peak = max(peak, _status_mb(proc.pid, "VmHWM"))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{step}: duban {' '.join(args)} failed:\n{text[-3000:]}")
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return Figure(step, seconds, peak, load, last[:160]), text


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def serve(
    step: str, env: dict[str, str], idle: float, patience: float, console: bool = False
) -> Figure:
    import aiohttp

    port = free_port()
    env = {**env, "DUBAN_HOST": "127.0.0.1", "DUBAN_PORT": str(port)}
    load = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    if proc.returncode is not None:
                        log.seek(0)
                        raise SystemExit(f"serve exited:\n{log.read().decode()[-3000:]}")
                    if time.perf_counter() - started > patience:
                        raise SystemExit(f"serve not ready after {patience:.0f} s")
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                ready = time.perf_counter() - started
                asked = ""
                if console:  # the page's first request makes the directory
                    url = f"http://127.0.0.1:{port}/console/api/directory"
                    async with http.get(url, headers={"Accept-Encoding": "gzip"}) as r:
                        size = len(await r.read())
                    asked = f"; directory {size / 2**20:.1f} MB"
            await asyncio.sleep(idle)
            rss = _status_mb(proc.pid, "VmRSS")
            peak = _status_mb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=60)
        log.seek(0)
        text = log.read().decode()
    if "Traceback" in text:
        raise SystemExit(f"serve logged a traceback:\n{text[-3000:]}")
    said = [m.group(1) for m in re.finditer(r"configuration (applied: .*|unchanged.*)", text)]
    note = f"RSS after {idle:.0f} s idle {rss:,.0f} MB{asked}; {said}"
    return Figure(step, ready, peak, load, note)


async def audit_sizes(database_url: str) -> str:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import AuditEntry

    db = Database(database_url)
    try:
        async with db.begin() as s:
            rows = (
                await s.execute(
                    select(AuditEntry.action, AuditEntry.before, AuditEntry.after).where(
                        AuditEntry.actor == "config"
                    )
                )
            ).all()
            count = await s.scalar(select(func.count()).select_from(AuditEntry))
    finally:
        await db.dispose()
    largest = max((len(str(b)) + len(str(a)) for _, b, a in rows), default=0)
    return f"{count:,} audit rows in all; the largest sync row {largest:,} characters"


async def floor(server: str | None, config: Path) -> Figure:
    """The rows `config apply` creates, written straight through the driver."""
    from typing import cast

    from sqlalchemy import Table, select

    from bot import schema
    from bot.bulk import insert_rows
    from bot.db import Database
    from bot.deployment import load
    from bot.models import Community, CommunityMember, Identity, Person, Role, Unit

    spec = load(config, live=False).spec
    async with fresh_database(server) as url:
        db = Database(url)
        try:
            await schema.upgrade(db.engine)
            load_now = load_average()
            started = time.perf_counter()
            now = datetime.now(UTC)
            async with db.begin() as s:

                async def put(model: Any, cols: tuple[str, ...], rows: Any) -> dict[str, int]:
                    t = cast(Table, model.__table__)
                    await insert_rows(s, t, cols, rows)
                    if "key" not in t.c:
                        return {}
                    return {k: i for k, i in await s.execute(select(t.c.key, t.c.id))}

                stamps = (True, now, now)
                cols = ("key", "name", "short_name", "active", "created_at", "updated_at")
                units = await put(
                    Unit, cols, ((u.id, u.name, u.short, *stamps) for u in spec.units)
                )
                cols = ("key", "name", "active", "created_at", "updated_at")
                rows = ((c.id, c.name, *stamps) for c in spec.communities)
                communities = await put(Community, cols, rows)
                rows = (
                    (communities[c.id], units[m], m == c.lead)
                    for c in spec.communities
                    for m in c.members
                )
                await put(CommunityMember, ("community_id", "unit_id", "is_lead"), rows)
                cols = ("key", "name", "mobile", "active", "created_at", "updated_at")
                rows = ((p.id, p.name, p.mobile, *stamps) for p in spec.people)
                people = await put(Person, cols, rows)
                rows = (
                    (people[p.id], platform, uid)
                    for p in spec.people
                    for platform, uid in (("wecom", p.wecom), ("dingtalk", p.dingtalk))
                    if uid
                )
                await put(Identity, ("person_id", "platform", "user_id"), rows)
                roles = [(people[a], "admin", None) for a in spec.committee.admins]
                for u in spec.units:
                    roles += [(people[p], "liaison", units[u.id]) for p in u.liaisons]
                    roles += (
                        [(people[u.secretary], "secretary", units[u.id])] if u.secretary else []
                    )
                cols = ("person_id", "role", "unit_id", "source", "created_at")
                await put(Role, cols, ((*r, "config", now) for r in roles))
            seconds = time.perf_counter() - started
        finally:
            await db.dispose()
    return Figure("floor: the same rows straight through the driver", seconds, 0.0, load_now)


def change_names(config: Path, everyone: bool) -> None:
    """One person's name (the first generated liaison), or every name in units.yaml."""
    path = config / "units.yaml"
    text = path.read_text(encoding="utf-8")
    if everyone:
        text = text.replace('"name": "', '"name": "新')
    else:
        text = re.sub(r'("id": "p00000l1", "name": ")', r"\1改", text, count=1)
    path.write_text(text, encoding="utf-8")


async def main_async(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from province import write_config

    steps = [s for s in args.steps.split(",") if s]
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="duban-config-"))
    figures: list[Figure] = []
    try:
        config = write_config(work / "conf", units=args.units, json_units=not args.yaml_units)
        async with fresh_database(args.database, keep=args.keep) as url:
            env = _env(url, config)
            written = "YAML" if args.yaml_units else "JSON"
            print(f"{backend(url)}, {args.units} units (units.yaml as {written}); {load_average()}")

            def step(fig: Figure) -> None:
                figures.append(fig)
                print(fig.row(), flush=True)

            if "load" in steps:
                step(run("load", ["config", "check", str(config)], env)[0])
            if "floor" in steps:
                step(await floor(args.database, config))
            if "apply" in steps:
                step(run("apply (empty database)", ["config", "apply", str(config)], env)[0])
            if "again" in steps:
                step(run("apply again, unchanged", ["config", "apply", str(config)], env)[0])
            if "serve" in steps:
                extra = {"DUBAN_SCHEDULER_ENABLED": "true" if args.scheduler else "false"}
                if args.console:
                    extra.update(DUBAN_CONSOLE="true", DUBAN_DELIVERY="console")
                for name in ("serve, first start", "serve, restart unchanged"):
                    run_env = {**env, **extra}
                    step(await serve(name, run_env, args.idle, args.patience, args.console))
            if "one" in steps:
                change_names(config, everyone=False)
                step(run("apply, one name changed", ["config", "apply", str(config)], env)[0])
            if "mass" in steps:
                change_names(config, everyone=True)
                fig = run("apply, every name changed", ["config", "apply", str(config)], env)[0]
                fig.note += f"; {await audit_sizes(url)}"
                step(fig)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| step | seconds | peak RSS | load | says |\n| --- | ---: | ---: | --- | --- |")
    for fig in figures:
        print(fig.row())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", help="PostgreSQL server URL (default: a SQLite file)")
    p.add_argument("--units", type=int, default=20000)
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated: {STEPS}")
    p.add_argument("--idle", type=float, default=10.0, help="seconds idle before reading RSS")
    p.add_argument("--patience", type=float, default=900.0, help="seconds to wait for /readyz")
    p.add_argument("--scheduler", action="store_true", help="serve with the scheduler on")
    p.add_argument("--console", action="store_true", help="serve the local console too")
    p.add_argument("--yaml-units", action="store_true", help="units.yaml written as YAML")
    p.add_argument("--keep", action="store_true", help="keep the files and the database")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
