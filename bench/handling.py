"""The work behind the answers: check-ins handled per second, one transaction each against
several per transaction, on the same prepared ledger in the same run.

    python bench/handling.py [--database URL] [--units 2000] [--messages 3000] [--batch 50]

What `bench/inbound.py` calls `handled/s`, without HTTP, wrk or delivery in the way: the
province (bench/province.py) is applied and its month materialised; then distinct liaisons'
`打卡 n 已完成` messages go through the real Inbox (ids and bodies stored, as a callback
stores them) and the real Dispatcher, first one message per transaction (the baseline), then
in batches. Each run gets its own messages; every one must end as a recorded check-in with
one audit entry and one queued reply, or the run fails.

Printed per run: messages/s, the process's CPU time per message (aiosqlite's thread included)
and statements per message, and the ratio of the batched run to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import backend, fresh_database, load_average, machine, peak_rss_mb, timed
from bench._copy import apply_or_copy
from bench.inbound_data import TEXT, Liaison, liaisons
from bench.province import write_config

AT = datetime.fromisoformat("2026-11-10T10:00:00+08:00")  # inside the month, before deadlines


def messages(people: Sequence[Liaison], run: str) -> list[Any]:
    from bot.messages import ChatRef, Inbound

    return [
        Inbound(
            platform="dingtalk",
            event_id=f"bench-{run}-{n}",
            chat=ChatRef("dingtalk", p.chat_id, is_group=True),
            sender_id=p.account,
            sender_name=f"联络员{n}",
            text=TEXT % p.no,
            received_at=AT,
            source="dingtalk_http",
        )
        for n, p in enumerate(people)
    ]


class Statements:
    """Counts what reaches the driver."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.n = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._one)

    def _one(self, *_: Any) -> None:
        self.n += 1


async def measure(args: argparse.Namespace, url: str, conf: Path, loaded: Any) -> bool:
    from sqlalchemy import func, select

    from bot import schema
    from bot.clock import FixedClock
    from bot.db import Database
    from bot.dispatch import Dispatcher, outbox_poster
    from bot.duerules import Period
    from bot.inbound import Inbox
    from bot.ledger.instances import materialise
    from bot.models import AuditEntry, CheckIn, OutboxMessage
    from bot.render import Renderer
    from handlers import build_router

    db = Database(url)
    try:
        await schema.upgrade(db.engine)
        clock = FixedClock(AT)
        with timed() as t:
            applied = await apply_or_copy(db, loaded, clock)
        async with db.begin() as s:
            made = await materialise(s, Period.containing("monthly", AT.date()), now=AT)
        print(f"config apply {t[0]:.1f} s ({applied}); {made} instances ({load_average()})")
        people = liaisons(conf, "dingtalk")
        runs = [("one", 1), *((f"batch{b}", b) for b in args.batch)]
        need = len(runs) * args.messages
        if len(people) < need:
            raise SystemExit(f"{len(people)} liaisons, {need} needed: more --units")
        dispatcher = Dispatcher(
            build_router(), db, loaded, Renderer.for_config(loaded.root), clock,
            outbox_poster(loaded, clock),
        )  # fmt: skip
        stmts = Statements(db.engine)
        ok, base = True, 0.0
        for i, (name, batch) in enumerate(runs):
            msgs = messages(people[i * args.messages : (i + 1) * args.messages], name)
            inbox = Inbox(
                db, clock, dispatcher, dispatch_many=dispatcher.many, at_once=batch,
                workers=args.workers,
            )  # fmt: skip
            inbox.dispatch_takes = True  # as bot.app sets it for the Dispatcher
            # Accepting (one INSERT of ids and bodies, as the callbacks make) is timed too: it
            # is a few milliseconds against seconds of handling.
            before_n, cpu, wall = stmts.n, time.process_time(), time.perf_counter()
            await inbox.accept(msgs)
            await inbox.drain()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            async with db.begin() as s:
                prefix = f"bench-{name}-%"
                done = await s.scalar(
                    select(func.count())
                    .select_from(CheckIn)
                    .where(CheckIn.platform_msg_id.like(prefix))
                )
                audited = await s.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(AuditEntry.entity_key.like(prefix), AuditEntry.action == "command:打卡")
                )
                replies = await s.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.dedupe_key.like(f"reply:dingtalk:{prefix}"))
                )
            n = len(msgs)
            rate = n / wall
            base = base or rate
            whole = done == audited == replies == n
            ok &= whole
            print(
                f"{name:>8}: {rate:7.0f} messages/s, {cpu / n * 1000:5.2f} ms CPU and "
                f"{(stmts.n - before_n) / n:5.2f} statements a message, {rate / base:4.1f}× "
                f"one; recorded {done}, audited {audited}, replies {replies} of {n}"
                f"{'' if whole else ' — MISSING'} ({load_average()})"
            )
        return ok
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="SQLAlchemy URL; default a temporary SQLite file")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, nargs="+", default=[50])
    parser.add_argument(
        "--workers", type=int, help="the inbox's workers (default: 1 on SQLite, 4 on PostgreSQL)"
    )
    args = parser.parse_args()
    print(f"# handling: {machine()}")
    with tempfile.TemporaryDirectory(prefix="duban-handling-") as tmp:
        from bot.deployment import load

        conf = write_config(Path(tmp) / "conf", units=args.units)
        loaded = load(conf, env={})

        async def go() -> bool:
            async with fresh_database(args.database) as url:
                print(f"database: {backend(url)}")
                return await measure(args, url, conf, loaded)

        ok = asyncio.run(go())
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
