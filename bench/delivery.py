"""Delivering the outbox: what one queued message costs the worker, per number of lanes.

    python bench/delivery.py [--database URL] [--messages 10000] [--lanes 10000 100]
                             [--targets groups|replies] [--code DIR] [--profile OUT]

For each lane count M: a fresh database (a SQLite file, or a new database on the PostgreSQL
server ``--database`` names) with N pending messages spread round-robin over M lanes, queued
through ``bot.outbox.enqueue_many``; then the real ``DeliveryWorker.run()`` delivers them, as
``duban serve`` does, to an in-process sink standing in for every channel the way
``DUBAN_DELIVERY=console`` puts the console behind every channel (no platform, no limit of its
own). Printed per run: messages per second; CPU per message of this process (on SQLite that is
all of it, aiosqlite's thread included) and, on PostgreSQL, of the server's backends serving
the run's database; SQL statements per message (a ``before_cursor_execute`` listener) and those
run most; and two baselines measured in the same run: one statement's round trip (``SELECT 1``
in its own transaction) and the sink alone.

Targets: ``groups`` (default) are M configured WeCom robot groups, 600 posts a minute each (so
the robots' limit never binds here; the worker still charges it), resolved by group key at send
time; ``replies`` are M people's one-to-one chats answered through a DingTalk session route,
20 a minute per chat, so N/M may not exceed 20.

``--code DIR`` imports the bot from another tree, e.g. an older commit exported with
``git archive <commit> | tar -x -C DIR``, for a before/after on the same machine and load.

A run passes only if every message was delivered exactly once, each lane in queue order, and
every row ends ``sent``; the exit status says whether all did.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import backend, fresh_database, load_average, machine

BODY = "已记录：**主题党日** 第 {n} 条已完成。\n\n> 本月进度 3/5，剩余 2 项请于 25 日前报送。"


class Sink:
    """Every channel's sender: remembers what reached each chat, in order."""

    def __init__(self, expected: int) -> None:
        from bot.senders import CHANNEL_TYPES

        self.channel_types = CHANNEL_TYPES
        self.expected, self.count = expected, 0
        self.by_chat: dict[str, list[int]] = defaultdict(list)
        self.done = asyncio.Event()

    async def send(self, destination: Any, message: Any, *, skip_parts: int = 0) -> None:
        self.by_chat[destination.chat_id].append(int(message.title))
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


def deployment_for(lanes: int, targets: str, tmp: Path) -> Any:
    from bot.deployment import load
    from tests.configs import ENV, mini, write

    data = mini()
    if targets == "groups":
        data["groups"] += [
            {
                "id": f"g{i:05d}",
                "name": f"第{i}共同体群",
                "platform": "wecom",
                "chat_id": f"wrkBench{i:05d}",
                "channel": {
                    "type": "wecom_webhook",
                    "key": f"bench-key-{i:05d}",
                    "rate_per_minute": 600,
                },
            }
            for i in range(lanes)
        ]
    return load(write(tmp / "conf", data), env=ENV, live=False)


def queued(messages: int, lanes: int, targets: str, deployment: Any, now: Any) -> list[Any]:
    from bot.messages import Outbound
    from bot.outbox import Queued, Target, group_target

    if targets == "groups":
        groups = {g.id: g for g in deployment.spec.groups}
        to = [group_target(groups[f"g{i:05d}"]) for i in range(lanes)]
    else:
        url = "https://oapi.dingtalk.com/robot/sendBySession?session=bench"
        expires = now + timedelta(hours=2)
        to = [
            Target(
                "dingtalk",
                f"staff{i:05d}",
                channel_type="dingtalk_session",
                url=url,
                expires_at=expires,
                is_group=False,
            )
            for i in range(lanes)
        ]
    return [
        Queued(Outbound(BODY.format(n=n), title=str(n)), to[n % lanes], "reply", f"bench:{n}")
        for n in range(messages)
    ]


async def round_trip(db: Any, times: int = 500) -> float:
    """Seconds of CPU for one ``SELECT 1`` in its own transaction: what a statement costs."""
    from sqlalchemy import select

    stmt = select(1)
    started = time.process_time()
    for _ in range(times):
        async with db.begin() as session:
            await session.execute(stmt)
    return (time.process_time() - started) / times


async def sink_alone(items: list[Any]) -> float:
    """Seconds of CPU per message for the sink by itself (the floor of the send)."""
    from bot.adapters.base import Destination

    sink, where = Sink(len(items)), Destination("wecom", "x", "console")
    started = time.process_time()
    for item in items:
        await sink.send(where, item.message)
    return (time.process_time() - started) / len(items)


class ServerCpu:
    """CPU seconds of the PostgreSQL backends serving one database while it runs: the server
    runs on this machine, so /proc shows them. Sampled every 0.2 s (a backend that lives less
    long is missed); the sampler's own CPU is kept apart in ``own``, not counted as the bot's."""

    def __init__(self, database: str) -> None:
        self.tag = f" {database} ".encode()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.own = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServerCpu:
        self.first = await asyncio.to_thread(self._sample)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.last.update(await asyncio.to_thread(self._sample))

    @property
    def seconds(self) -> float:
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.last.update(await asyncio.to_thread(self._sample))

    def _sample(self) -> dict[int, float]:
        started, ticks, found = time.thread_time(), os.sysconf("SC_CLK_TCK"), {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"{entry.path}/cmdline", "rb") as cmdline:
                    title = cmdline.read()
                if not title.startswith(b"postgres: ") or self.tag not in title:
                    continue
                with open(f"{entry.path}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime+stime
        self.own += time.thread_time() - started
        return found


def given_up(metrics: Any) -> bool:
    """Whether the worker has found a message dead (the sink will then never be full)."""
    return any(
        sample.value > 0
        for family in metrics.registry.collect()
        if family.name == "duban_outbox_dead"
        for sample in family.samples
    )


@dataclass
class Run:
    wall: float = 0.0
    cpu: float = 0.0
    server: float = 0.0
    statements: Counter[str] = field(default_factory=Counter)
    ok: bool = False
    problem: str = ""


async def deliver(db: Any, deployment: Any, messages: int, profile: str | None) -> Run:
    """The real worker's ``run()`` until the sink has every message and the worker stopped."""
    from sqlalchemy import event, func, select
    from sqlalchemy.engine import make_url

    from bot.clock import SystemClock
    from bot.delivery import DeliveryWorker
    from bot.metrics import Metrics
    from bot.models import OutboxMessage
    from bot.senders import Senders

    run, sink, metrics = Run(), Sink(messages), Metrics()
    senders = Senders(dict.fromkeys(sink.channel_types, sink))  # type: ignore[arg-type]
    worker = DeliveryWorker(db, senders, deployment, SystemClock(), metrics=metrics)

    def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        run.statements[" ".join(sql.split())[:90]] += 1

    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="enabled")
    postgres = db.dialect == "postgresql"
    server = ServerCpu(make_url(db.url).database or "" if postgres else "")
    async with AsyncExitStack() as stack:
        if postgres:
            await stack.enter_async_context(server)
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        if profiler is not None:
            profiler.start()
        cpu, wall, own = time.process_time(), time.perf_counter(), server.own
        runner = asyncio.create_task(worker.run())
        while not sink.done.is_set() and not given_up(metrics):
            with suppress(TimeoutError):
                await asyncio.wait_for(sink.done.wait(), timeout=1)
        await worker.stop(60)
        await runner
        run.wall = time.perf_counter() - wall
        run.cpu = time.process_time() - cpu - (server.own - own)  # the sampler is not the bot
        if profiler is not None:
            profiler.stop()
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    run.server = server.seconds
    if profiler is not None:
        html = (profile or "").endswith(".html")
        text = profiler.output_html() if html else profiler.output_text(color=False)
        await asyncio.to_thread(Path(profile or "").write_text, text)

    async with db.begin() as session:
        counts = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        states = {status: n for status, n in (await session.execute(counts)).all()}
    order_kept = all(seq == sorted(seq) for seq in sink.by_chat.values())
    delivered = Counter(n for seq in sink.by_chat.values() for n in seq)
    once = len(delivered) == messages and set(delivered.values()) == {1}
    run.ok = order_kept and once and states == {"sent": messages}
    run.problem = f"order kept {order_kept}, exactly once {once}, rows {states}"
    return run


async def one(url: str, messages: int, lanes: int, targets: str, profile: str | None) -> bool:
    from bot import schema
    from bot.clock import SystemClock
    from bot.db import Database
    from bot.outbox import enqueue_many

    now = SystemClock().now()
    with tempfile.TemporaryDirectory(prefix="duban-bench-delivery-") as tmp:
        deployment = deployment_for(lanes, targets, Path(tmp))
    db = Database(url)
    try:
        await schema.upgrade(db.engine)
        items = queued(messages, lanes, targets, deployment, now)
        async with db.begin() as session:
            await enqueue_many(session, items, now=now)
        trip, floor = await round_trip(db), await sink_alone(items)
        run = await deliver(db, deployment, messages, profile)
    finally:
        await db.dispose()

    per = 1000 / messages  # seconds in all → ms per message
    total = sum(run.statements.values())
    print(f"\n{messages:,} messages over {lanes:,} lanes ({targets}), {backend(url)}:")
    print(f"  delivered in {run.wall:.2f} s: {messages / run.wall:,.0f} messages/s")
    server = f", server {run.server * per:.2f} ms" if url.startswith("postgresql") else ""
    trips = run.cpu / messages / trip  # the same figure in the machine's current speed
    print(
        f"  CPU per message: this process {run.cpu * per:.2f} ms ({trips:.1f} round trips){server}"
    )
    print(f"  statements per message: {total / messages:.2f}  ({load_average()})")
    print(f"  baselines: a statement's round trip {trip * 1000:.2f} ms CPU, the sink alone "
          f"{floor * 1000:.3f} ms")  # fmt: skip
    print("  statements run most (per message):")
    for sql, n in run.statements.most_common(6):
        print(f"    {n / messages:7.3f}  {sql}")
    if not run.ok:
        print(f"  FAILED: {run.problem}")
    return run.ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a PostgreSQL URL (default: a SQLite temp file)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--lanes", type=int, nargs="+", default=[10_000, 100])
    parser.add_argument("--targets", choices=("groups", "replies"), default="groups")
    parser.add_argument("--code", type=Path, help="import the bot from this tree instead")
    parser.add_argument(
        "--profile", help="a pyinstrument profile of the last run: FILE.html, else text"
    )
    args = parser.parse_args()
    if args.targets == "replies" and any(args.messages > 20 * m for m in args.lanes):
        parser.error("replies: at most 20 messages a lane (a chat's robot limit would bind)")
    if args.code is not None:
        sys.path.insert(0, str(args.code.resolve()))
    import bot

    print(machine(), "|", load_average(), "| code:", Path(bot.__file__).parent.parent)

    async def runs() -> bool:
        ok = True
        for lanes in args.lanes:
            async with fresh_database(args.database) as url:
                ok &= await one(url, args.messages, lanes, args.targets, args.profile)
        return ok

    sys.exit(0 if asyncio.run(runs()) else 1)


if __name__ == "__main__":
    main()
