"""Helpers the benchmarks share: a fresh database, timing, peak RSS, the machine's state.

Stable on purpose (other benchmarks import it): add, do not change what is here.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, current_rss_mb())


def current_rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """The highest RSS seen while the block runs, sampled every 5 ms by a thread (the block's
    own peak: ru_maxrss would be the configuration's load or apply, earlier)."""

    def __init__(self) -> None:
        self.peak = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, current_rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())


def load_average() -> str:
    """The 1-minute load average and the core count: ``load 1.23/2``."""
    return f"load {os.getloadavg()[0]:.2f}/{os.cpu_count()}"


def machine() -> str:
    """One line: cores, memory, Python, date."""
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return (
        f"{os.cpu_count()} cores, {pages * size / 2**30:.1f} GiB RAM, "
        f"Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: …`` then ``t[0]`` is the elapsed seconds."""
    out: list[float] = []
    started = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - started)


def summary(samples: Sequence[float]) -> tuple[float, float]:
    """(median, max)."""
    return statistics.median(samples), max(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@asynccontextmanager
async def fresh_database(url: str | None, *, keep: bool = False) -> AsyncIterator[str]:
    """A new, empty database for one run, dropped afterwards unless ``keep``.

    None: a SQLite file in a temporary directory. A PostgreSQL URL names the server to use:
    a database ``duban_bench_<random>`` is created on it (the URL's own database is only
    connected to, for the CREATE and the DROP).
    """
    if url is None or url.startswith("sqlite"):
        if url is not None:
            yield url
            return
        with tempfile.TemporaryDirectory(prefix="duban-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"duban_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            if not keep:
                async with admin.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


async def last_checkpoint(db: Any) -> datetime | None:
    """When PostgreSQL's last completed checkpoint began (None on SQLite, or where this role may
    not ask). Read before and after a measurement, it tells whether one ended during it: a
    checkpoint's last phase fsyncs every file it wrote, and a commit meanwhile waits behind
    them for its own (40–180 ms on this machine, where it otherwise takes about 1 ms)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    if db.dialect != "postgresql":
        return None
    try:
        async with db.engine.connect() as conn:
            found: datetime | None = await conn.scalar(
                text("SELECT checkpoint_time FROM pg_control_checkpoint()")
            )
            return found
    except DBAPIError:  # pg_control_checkpoint() is for superusers and pg_monitor
        return None


def checkpoint_ended(before: datetime | None, after: datetime | None) -> str:
    """``, a checkpoint of PostgreSQL ended meanwhile`` where one did between two readings."""
    if before is None or after is None or after == before:
        return ""
    return ", a checkpoint of PostgreSQL ended meanwhile"
