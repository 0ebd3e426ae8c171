"""A real `duban serve` killed with SIGKILL while a burst of answered check-ins is still being
handled loses none of them: the next start handles each one exactly once.

The burst is large enough that the 200s come back long before the work is done (answering
takes an INSERT per batch of callbacks; handling takes a transaction per message), and the
test checks that some messages were indeed left waiting at the kill, so it cannot pass by
killing a process that had already finished.

The restarted process runs on a drill clock three minutes later (DUBAN_CLOCK_START), as a
restart after an outage would: on PostgreSQL a starting instance takes over only messages
that have waited longer than anyone would take (another live instance may hold the newer ones).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.inbound import ORPHANED_AFTER
from bot.models import AuditEntry, InboundSeen, OutboxMessage
from tests.configs import write
from tests.fakes import FakeDingTalk
from tests.test_multi_instance import START, Server, drill_config
from tests.test_serve import env_for

MESSAGES = 400
CONCURRENCY = 50


async def unhandled(db: Database) -> int:
    async with db.begin() as s:
        found = await s.scalar(
            select(func.count()).select_from(InboundSeen).where(InboundSeen.handled_at.is_(None))
        )
        return int(found or 0)


async def burst(http: aiohttp.ClientSession, server: Server, dingtalk: FakeDingTalk) -> list[int]:
    """Every liaison checks in, again and again, each time with a new message id."""
    room = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> int:
        staff = f"staff_{i % 10 + 1}"
        body = dingtalk.bot_message("打卡 3 已开展主题党日", staff, staff, f"k{i}", "1")
        async with (
            room,
            http.post(
                f"{server.url}/hooks/dingtalk", json=body, headers=dingtalk.callback_headers()
            ) as r,
        ):
            return r.status

    return list(await asyncio.gather(*(one(i) for i in range(MESSAGES))))


async def test_sigkill_with_answered_messages_unhandled_loses_none(
    database_url: str, tmp_path: Path, aiohttp_server: Any
) -> None:
    shift = (START - datetime.now(SHANGHAI)).total_seconds()  # the fake signs for the drill's day
    dingtalk = FakeDingTalk(clock=lambda: time.time() + shift, rate_limit=6000)
    await dingtalk.start(aiohttp_server)
    env = env_for(
        database_url,
        write(tmp_path / "conf", drill_config()),
        DUBAN_CLOCK_START=START.isoformat(),
        DUBAN_SCHEDULER_ENABLED="false",
        DUBAN_DINGTALK_APP_KEY=dingtalk.app_key,
        DUBAN_DINGTALK_APP_SECRET=dingtalk.app_secret,
        DUBAN_DINGTALK_API_BASE=dingtalk.base_url,
        DUBAN_DINGTALK_OAPI_BASE=dingtalk.base_url,
    )
    db = Database(database_url)
    http = aiohttp.ClientSession()
    first = await Server.start("first", env)
    second: Server | None = None
    try:
        await until_ready(http, first)
        statuses = await burst(http, first, dingtalk)
        first.kill()
        await first.ended()
        assert statuses == [200] * MESSAGES  # every one answered: the platform will not resend
        left = await unhandled(db)
        assert left > 0, "the process finished before the kill: the test proved nothing"

        later = START + ORPHANED_AFTER + timedelta(minutes=1)
        second = await Server.start("second", {**env, "DUBAN_CLOCK_START": later.isoformat()})
        await until_ready(http, second)
        for _ in range(600):  # bounded: 60 s for the restarted process to catch up
            if await unhandled(db) == 0:
                break
            await asyncio.sleep(0.1)
        assert await unhandled(db) == 0, second.text()

        async with db.begin() as s:
            audited = (
                await s.scalars(
                    select(AuditEntry.entity_key).where(
                        AuditEntry.entity == "message", AuditEntry.action.like("command:%")
                    )
                )
            ).all()
            replies = (
                await s.scalars(
                    select(OutboxMessage.dedupe_key).where(OutboxMessage.kind == "reply")
                )
            ).all()
        # Each message handled exactly once: none lost, none handled by both processes.
        assert Counter(audited) == {f"k{i}": 1 for i in range(MESSAGES)}
        assert sorted(replies) == sorted(f"reply:dingtalk:k{i}:0" for i in range(MESSAGES))
        assert "accepted earlier and not yet handled" in second.text()
        for server in (first, second):
            assert "Traceback" not in server.text(), server.text()
    finally:
        for server in (first, second):
            if server is not None:
                server.kill()
                await server.ended()
        await http.close()
        await db.dispose()


async def until_ready(http: aiohttp.ClientSession, server: Server) -> None:
    for _ in range(600):  # bounded: 60 s for the process to come up
        if server.proc.returncode is not None:
            raise AssertionError(server.text())
        if (state := await server.ready(http)) is not None and state.get("ready"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{server.name} did not come up\n{server.text()}")
