"""Conflicts between transactions (PostgreSQL: row locks, deadlocks): a transaction the database
fails to let another finish goes again; the messages in it are not answered with an error.
Collected on PostgreSQL only (tests/conftest.py): SQLite runs one transaction at a time."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select, text

from bot.models import TaskInstance, Unit
from tests.chat import Chat
from tests.test_commands_basic import instance_no
from tests.test_dispatch_together import audited


async def test_a_batch_the_database_fails_for_a_deadlock_goes_again(
    chat: Chat, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="bot.dispatch")
    nos = {unit: await instance_no(chat, unit, "主题党日") for unit in ("zjj", "jtj")}
    async with chat.ledger() as s:
        ids = {
            unit: await s.scalar(
                select(TaskInstance.id).join(Unit).where(Unit.key == unit, TaskInstance.no == no)
            )
            for unit, no in nos.items()
        }
    engine = chat.deps.db.engine
    async with engine.connect() as other:
        # Another transaction holds jtj's instance; the burst changes zjj's, then needs jtj's.
        await other.execute(
            select(TaskInstance.id).where(TaskInstance.id == ids["jtj"]).with_for_update()
        )
        burst = asyncio.create_task(
            chat.say_together(
                [
                    ("p_zjj_ll1", f"打卡 {nos['zjj']} 已开展"),
                    ("p_jtj_ll1", f"打卡 {nos['jtj']} 已开展"),
                ]
            )
        )
        await waiting_for_a_lock(chat)
        # …and now wants zjj's: each waits for the other, and PostgreSQL fails the burst.
        await other.execute(
            select(TaskInstance.id).where(TaskInstance.id == ids["zjj"]).with_for_update()
        )
        await other.rollback()
        replies = await burst
    assert [r[:3] for r in replies] == ["已记录", "已记录"], replies
    assert await audited(chat, "checkin.create") == 2
    assert "met another transaction's locks: again" in caplog.text


async def waiting_for_a_lock(chat: Chat) -> None:
    for _ in range(1000):  # bounded: 5 s
        async with chat.ledger() as s:
            waiting = await s.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        if waiting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the burst never waited for the lock")
