"""The processes of the inbound benchmark: `duban serve`, the bare ceiling, the database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.db import Database

ROOT = Path(__file__).resolve().parent.parent
FAILED = re.compile(r"command \S+ failed for \S+ message|handling \S+ message \S+ failed")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Counts:
    accepted: int = 0  # inbound_seen rows of the platform
    recorded: int = 0  # check-ins made or updated (their audit entries)
    refused: int = 0  # messages answered with a refusal
    handled: int = 0  # messages whose transaction committed (command or refusal)
    audit_id: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.accepted - other.accepted,
            self.recorded - other.recorded,
            self.refused - other.refused,
            self.handled - other.handled,
            self.audit_id,
        )


async def database_for(url: str | None, work: Path) -> tuple[str, str | None]:
    """(the run's database URL, the admin URL it was created from, for dropping it)."""
    if not url:
        return f"sqlite+aiosqlite:///{work / 'duban.db'}", None
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url, None
    import asyncpg

    name = f"duban_bench_inbound_{os.getpid()}"
    conn = await asyncpg.connect(**_asyncpg_args(url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False), url


async def drop_database(admin_url: str, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(**_asyncpg_args(admin_url))
    try:
        name = make_url(url).database
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _asyncpg_args(url: str) -> dict[str, object]:
    u = make_url(url)
    return {
        "user": u.username,
        "password": u.password,
        "host": u.host,
        "port": u.port,
        "database": u.database,
    }


class Server:
    """`duban serve` as a child process, its log in a file, its memory read from /proc."""

    def __init__(self, database_url: str, config: Path, env: dict[str, str], log: Path) -> None:
        self.database_url, self.config, self.log = database_url, config, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
        self.env.update(
            env,
            DUBAN_DATABASE_URL=database_url,
            DUBAN_CONFIG=str(config),
            DUBAN_HOST="127.0.0.1",
            DUBAN_PORT=str(self.port),
            DUBAN_DELIVERY="console",
            DUBAN_CONSOLE="true",
            DUBAN_SCHEDULER_ENABLED="true",
            DUBAN_LOG_LEVEL="INFO",
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.db = Database(database_url)
        self.ready_s = 0.0
        self.peak_start_mb = self.peak_load_mb = self.rss_end_mb = self.rss_ready_mb = 0.0
        self.tracebacks = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def start(self, patience: float) -> None:
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "serve",
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    raise SystemExit(f"duban serve exited:\n{self.log.read_text()[-3000:]}")
                if time.perf_counter() - started > patience:
                    raise SystemExit(f"duban serve not ready after {patience:.0f} s")
                try:
                    async with http.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
        await self._quiet()
        self.ready_s = time.perf_counter() - started

    async def _quiet(self, idle: float = 0.1, seconds: int = 3) -> None:
        """Wait until the start-up work beside the server (catch-up runs) is over: the process
        used under `idle` of a core for `seconds` seconds in a row."""
        calm, last = 0, self._cpu()
        for _ in range(600):
            await asyncio.sleep(1)
            now = self._cpu()
            calm = calm + 1 if now - last < idle else 0
            last = now
            if calm >= seconds:
                return

    def _cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def _status_kb(self, key: str) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> None:
        """Remember the start-up peak, then restart VmHWM (writing 5 to clear_refs)."""
        assert self.proc is not None
        self.peak_start_mb = self._status_kb("VmHWM") / 1024
        self.rss_ready_mb = self._status_kb("VmRSS") / 1024
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    async def counts(self, platform: str, since: Counts | None = None) -> Counts:
        """What the database shows; with `since`, the audit log is read only past it (the
        drain polls this twice a second, and a scan of the whole log competes with the
        server for the CPU it is measured on). On SQLite only: there ids are given in commit
        order, while on PostgreSQL a lower id may commit after a higher one was read."""
        base = since if since is not None and self.dialect == "sqlite" else Counts()
        async with self.db.engine.connect() as conn:
            accepted = await conn.scalar(
                text("SELECT count(*) FROM inbound_seen WHERE platform = :p"), {"p": platform}
            )
            row = (
                await conn.execute(
                    text(
                        "SELECT"
                        " sum(CASE WHEN action IN ('checkin.create', 'checkin.update')"
                        "  THEN 1 ELSE 0 END),"
                        " sum(CASE WHEN action LIKE 'refused:%' THEN 1 ELSE 0 END),"
                        " sum(CASE WHEN action LIKE 'command:%' OR action LIKE 'refused:%'"
                        "  THEN 1 ELSE 0 END),"
                        " max(id) FROM audit_log WHERE id > :after"
                    ),
                    {"after": base.audit_id},
                )
            ).one()
        recorded, refused, handled, last = (int(v or 0) for v in row)
        return Counts(
            int(accepted or 0),
            base.recorded + recorded,
            base.refused + refused,
            base.handled + handled,
            max(last, base.audit_id),
        )

    async def settle(self, platform: str, before: Counts, patience: float) -> Counts:
        """Wait until every accepted message has been handled (or nothing moves for 60 s)."""
        started = last_move = time.perf_counter()
        seen = await self.counts(platform, before)
        while time.perf_counter() - started < patience:
            await asyncio.sleep(0.5)
            now = await self.counts(platform, seen)
            if now != seen:
                last_move, seen = time.perf_counter(), now
            delta = now - before
            if delta.handled >= delta.accepted or time.perf_counter() - last_move > 60:
                break
        return seen

    def failures(self) -> int:
        """Messages whose handling raised, so far (the dispatcher's and the inbox's log lines)."""
        log = self.log.read_text(encoding="utf-8", errors="replace")
        self.tracebacks = log.count("Traceback")
        return len(FAILED.findall(log))

    async def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.returncode is None:
            try:
                self.peak_load_mb = int(_read_status(proc.pid, "VmHWM")) / 1024
                self.rss_end_mb = int(_read_status(proc.pid, "VmRSS")) / 1024
            except OSError:
                pass
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(120):  # the backlog is handled before it stops
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self.db.dispose()
        self.failures()

    async def profile(self, py_spy: str, seconds: int, name: str) -> asyncio.subprocess.Process:
        """py-spy's collapsed stacks of the server, beside the log (for finding the costs)."""
        assert self.proc is not None
        out = self.log.with_name(f"profile-{name}.txt")
        return await asyncio.create_subprocess_exec(
            py_spy,
            "record",
            "--gil",
            "--nonblocking",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
            "-d",
            str(seconds),
            "-p",
            str(self.proc.pid),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    @staticmethod
    async def bare(work: Path) -> tuple[asyncio.subprocess.Process, str]:
        port = free_port()
        with (work / "bare.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "bench" / "bare_server.py"),
                str(port),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.post(url + "/") as r:
                        if r.status == 200:
                            return proc, url
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        raise SystemExit("the bare server did not start")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _read_status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1]
    return "0"
