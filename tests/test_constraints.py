"""The ledger's own guarantees, enforced by the database itself."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.db import Database, claim
from bot.models import CheckIn, InboundSeen, Person, PlanTask, TaskInstance, Unit
from bot.sync import sync
from tests.configs import ENV, mini, write


@pytest.fixture
async def ledger(db: Database, tmp_path, clock) -> Database:
    from bot.deployment import load

    async with db.begin() as s:
        await sync(s, load(write(tmp_path, mini()), env=ENV).spec, clock.now())
    return db


async def _instance(s, now: datetime, period: str = "2026-11", no: int = 0) -> TaskInstance:
    unit = await s.scalar(select(Unit).where(Unit.key == "ua"))
    task = await s.scalar(select(PlanTask).where(PlanTask.key == "T01"))
    inst = TaskInstance(
        task_id=task.id,
        unit_id=unit.id,
        period=period,
        no=no or int(period.replace("-", "")),
        due_at=now + timedelta(days=3),
        created_at=now,
        updated_at=now,
    )
    s.add(inst)
    await s.flush()
    return inst


async def test_one_instance_per_task_unit_period(ledger: Database, clock) -> None:
    async with ledger.begin() as s:
        await _instance(s, clock.now())
        await _instance(s, clock.now(), period="2026-12")  # another period is fine
    with pytest.raises(IntegrityError, match=r"(?i)unique"):
        async with ledger.begin() as s:
            await _instance(s, clock.now(), no=99)  # a fresh number: only the period clashes


async def test_one_checkin_per_platform_message(ledger: Database, clock) -> None:
    now = clock.now()
    async with ledger.begin() as s:
        inst = await _instance(s, now)
        person = await s.scalar(select(Person).where(Person.key == "p_a_ll"))
        ids = (inst.id, person.id, inst.unit_id)
        s.add(
            CheckIn(
                instance_id=ids[0],
                reporter_id=ids[1],
                for_unit_id=ids[2],
                text="a",
                platform="dingtalk",
                platform_msg_id="msg-1",
                submitted_at=now,
                updated_at=now,
            )
        )
    async with ledger.begin() as s:  # the same id on another platform is another message
        s.add(
            CheckIn(
                instance_id=ids[0],
                reporter_id=ids[1],
                for_unit_id=ids[2],
                text="b",
                platform="wecom",
                platform_msg_id="msg-1",
                submitted_at=now,
                updated_at=now,
            )
        )
    with pytest.raises(IntegrityError):
        async with ledger.begin() as s:
            s.add(
                CheckIn(
                    instance_id=ids[0],
                    reporter_id=ids[1],
                    for_unit_id=ids[2],
                    text="c",
                    platform="dingtalk",
                    platform_msg_id="msg-1",
                    submitted_at=now,
                    updated_at=now,
                )
            )


async def test_status_values_are_checked(ledger: Database, clock) -> None:
    with pytest.raises(IntegrityError):
        async with ledger.begin() as s:
            inst = await _instance(s, clock.now())
            inst.status = "done-ish"


async def test_naive_datetimes_are_refused_and_aware_ones_round_trip(ledger, clock) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with ledger.begin() as s:
            await _instance(s, clock.now().replace(tzinfo=None))
    async with ledger.begin() as s:
        inst = await _instance(s, clock.now())
    async with ledger.begin() as s:
        due = await s.scalar(select(TaskInstance.due_at).where(TaskInstance.id == inst.id))
        assert due == clock.now() + timedelta(days=3)
        assert due.utcoffset() is not None


async def test_insert_or_ignore_claims_once(ledger: Database, clock) -> None:
    row = {"platform": "wecom", "event_id": "e1", "seen_at": clock.now()}
    results = []
    for _ in range(2):
        async with ledger.begin() as s:
            results.append(await claim(s, InboundSeen, row))
    assert results == [True, False]


async def test_instance_numbers_are_unique_per_unit(ledger: Database, clock) -> None:
    async with ledger.begin() as s:
        await _instance(s, clock.now(), period="2026-11", no=7)
    with pytest.raises(IntegrityError):
        async with ledger.begin() as s:
            await _instance(s, clock.now(), period="2026-12", no=7)
