"""Leadership among instances sharing one PostgreSQL (bot.leader), the leader's duties going and
coming with it (bot.duties), and the drill clock the multi-instance test runs on (bot.drill).

PostgreSQL only, like tests/test_multi_instance.py: tests/conftest.py collects this module only
when DUBAN_TEST_DATABASE_URL names a server. The lock is real.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from sqlalchemy import select

from bot.app import DEPS, create_app
from bot.clock import SHANGHAI, FixedClock
from bot.deployment import load
from bot.drill import ShiftedScheduler, ShiftedTrigger
from bot.leader import Leadership, connect, lock_key, startup_lock
from bot.messages import Outbound
from bot.models import OutboxMessage
from bot.outbox import enqueue, group_target
from bot.schedules import parse_schedule
from bot.settings import Settings
from bot.workdays import WorkCalendar
from jobs.registry import BY_NAME
from tests.configs import SAMPLE_CONFIG


def fast(
    database_url: str, instance: str, on_nudge: Callable[[], None] = lambda: None
) -> Leadership:
    """Short retry and check intervals keep the waits brief."""
    return Leadership(
        database_url, instance, on_nudge=on_nudge, retry=0.05, check=0.05, timeout=2.0
    )


@pytest.fixture
async def instances(database_url: str) -> AsyncIterator[list[Leadership]]:
    """Three would-be leaders, started (each tries once) and running."""
    found = [fast(database_url, f"host:{i}") for i in range(3)]
    for leadership in found:
        await leadership.start()
    tasks = [asyncio.create_task(leadership.run()) for leadership in found]
    try:
        yield found
    finally:
        for leadership in found:
            await leadership.stop()
        await asyncio.gather(*tasks)


async def leader_among(instances: list[Leadership], seconds: float = 5) -> Leadership:
    async with asyncio.timeout(seconds):
        while True:
            leading = [i for i in instances if i.is_leader]
            if leading:
                assert len(leading) == 1, leading
                return leading[0]
            await asyncio.sleep(0.02)


def console_app(database_url: str, at: datetime) -> web.Application:
    settings = Settings(
        database_url=database_url, config=SAMPLE_CONFIG, delivery="console", console=True
    )
    return create_app(settings, FixedClock(at), load(SAMPLE_CONFIG, env={}, live=False))


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def terminate(database_url: str, instance: str) -> None:
    """What an operator's pg_terminate_backend, or a lost network, does to a session."""
    admin = await connect(database_url, "test admin")
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            f"duban {instance}",
        )
        assert ended == 1
    finally:
        await admin.close()


async def test_one_leads_and_another_takes_over_when_it_stops(
    instances: list[Leadership],
) -> None:
    first = await leader_among(instances)
    assert sum(i.is_leader for i in instances) == 1
    await first.stop()
    second = await leader_among([i for i in instances if i is not first], seconds=2)
    assert second is not first and not first.is_leader


async def test_a_leader_that_loses_its_session_steps_down(
    instances: list[Leadership], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = await leader_among(instances)
    await terminate(database_url, first.instance)
    async with asyncio.timeout(5):
        await first.wait_for(False)
    assert "leadership lost" in caplog.text
    assert (await leader_among(instances)).is_leader  # someone leads again, one only


async def test_a_nudge_on_a_follower_wakes_the_leader(database_url: str) -> None:
    woken = asyncio.Event()
    leader = fast(database_url, "host:leader", on_nudge=woken.set)
    follower = fast(database_url, "host:follower")
    await leader.start()
    await follower.start()
    try:
        assert leader.is_leader and not follower.is_leader
        follower.nudge()  # a reply committed on the follower
        async with asyncio.timeout(5):
            await woken.wait()
    finally:
        await follower.stop()
        await leader.stop()


async def test_instances_starting_together_take_turns(database_url: str) -> None:
    order: list[str] = []

    async def start(name: str) -> None:
        async with startup_lock(database_url):
            order.append(f"{name} in")
            await asyncio.sleep(0.2)  # migrating
            order.append(f"{name} out")

    await asyncio.gather(start("a"), start("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


async def test_sqlite_has_one_instance_which_leads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.leader")
    woken = asyncio.Event()
    alone = Leadership(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", "host:1", on_nudge=woken.set)
    await alone.start()
    assert alone.is_leader and "SQLite: one instance by definition" in caplog.text
    alone.nudge()
    assert woken.is_set()
    await alone.stop()
    assert not alone.is_leader


async def test_the_duties_stop_with_leadership_and_start_again_with_it(
    database_url: str, aiohttp_client: Any
) -> None:
    at = datetime(2026, 11, 17, 12, 0, tzinfo=SHANGHAI)  # nothing due for hours
    client = await aiohttp_client(console_app(database_url, at))
    deps = client.app[DEPS]
    leadership, duties = deps.leadership, deps.duties
    assert leadership is not None and duties is not None
    assert leadership.is_leader and duties.active
    assert deps.scheduler.state == STATE_RUNNING
    assert (await (await client.get("/readyz")).json())["leader"] is True

    await terminate(database_url, leadership.instance)  # the database drops the session
    async with asyncio.timeout(10):
        await leadership.wait_for(False)
    await until(lambda: deps.scheduler.state == STATE_PAUSED)
    body = await (await client.get("/readyz")).json()
    assert body["ready"] is True, body  # a follower serves traffic all the same

    async with asyncio.timeout(15):  # alone, it takes the lock back at its next attempt
        await leadership.wait_for(True)
    await until(lambda: duties.active)
    assert deps.scheduler.state == STATE_RUNNING
    # The worker runs again: what is queued now goes out.
    admins = group_target(deps.deployment.spec.groups[0])
    async with deps.db.begin() as session:
        await enqueue(
            session,
            Outbound("重新选出后的第一条"),
            to=admins,
            kind="notice",
            dedupe_key="n",
            now=at,
        )
    deps.outbox.nudge()
    async with asyncio.timeout(10):
        while True:
            async with deps.db.begin() as session:
                status = await session.scalar(
                    select(OutboxMessage.status).where(OutboxMessage.kind == "notice")
                )
            if status == "sent":
                break
            await asyncio.sleep(0.05)


async def test_a_schedule_changed_on_a_follower_reaches_the_leader(
    database_url: str, aiohttp_client: Any
) -> None:
    at = datetime(2026, 11, 17, 12, 0, tzinfo=SHANGHAI)
    apps = [await aiohttp_client(console_app(database_url, at)) for _ in range(2)]
    leader, follower = sorted((c.app[DEPS] for c in apps), key=lambda d: not d.leadership.is_leader)
    assert leader.leadership.is_leader and not follower.leadership.is_leader
    assert follower.scheduling is not None
    async with follower.db.begin() as session:  # what 日程设置 提示 工作日 8:15 does there
        await follower.scheduling.set(session, BY_NAME["remind"], "工作日 8:15", "test", at)
    wanted = parse_schedule("工作日 8:15")
    await until(lambda: leader.scheduler.get_job("remind").trigger.spec == wanted, seconds=15)


def test_lock_keys_are_stable_signed_64_bit() -> None:
    assert lock_key("duban:leader") == lock_key("duban:leader") != lock_key("duban:startup")
    assert -(2**63) <= lock_key("duban:leader") < 2**63


def test_a_shifted_trigger_fires_when_the_drill_clock_shows_the_time() -> None:
    shift = timedelta(days=-6, hours=-3, seconds=17)  # the drill is that far from real time
    spec = parse_schedule("工作日 9:00")
    trigger = ShiftedTrigger(spec.trigger(WorkCalendar.official), shift)
    drill_now = datetime(2026, 11, 16, 8, 59, 35, tzinfo=SHANGHAI)
    real = trigger.get_next_fire_time(None, drill_now - shift)
    assert real is not None
    assert real + shift == datetime(2026, 11, 16, 9, 0, tzinfo=SHANGHAI)
    after = trigger.get_next_fire_time(real, real)
    assert after is not None and after + shift == datetime(2026, 11, 17, 9, 0, tzinfo=SHANGHAI)
    assert trigger.spec == spec and str(trigger) == str(spec.trigger(WorkCalendar.official))


def test_a_shifted_scheduler_shifts_every_trigger_once() -> None:
    scheduler = ShiftedScheduler(timedelta(hours=1), timezone=SHANGHAI)
    trigger = parse_schedule("每天 9:00").trigger(WorkCalendar.official)
    job = scheduler.add_job(print, trigger, id="j")
    assert isinstance(job.trigger, ShiftedTrigger)
    job = scheduler.reschedule_job("j", trigger=job.trigger)  # as a calendar refresh does
    assert isinstance(job.trigger, ShiftedTrigger) and job.trigger.inner is trigger
