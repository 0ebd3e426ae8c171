"""The paths made for a province's volumes write and send exactly what the plain ones do:
bulk inserts, many messages queued at once, the worker's remembered lane heads, the rate
window counted from when a post's requests were really made, and lists of more ids than a
statement may bind."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, insert, select, text, update

from bot import audit
from bot.bulk import insert_rows
from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.delivery import DeliveryWorker, retry_dead
from bot.delivery.limits import RollingLimiter
from bot.ledger import reviews
from bot.ledger.board import liaison_names, overdue_due_between
from bot.ledger.contacts import lead_of, mentions_for
from bot.ledger.escalation import late_workdays, put_on_negative_lists, reached_by, take_steps
from bot.ledger.problems import open_problems
from bot.ledger.progress import overdue, unit_tallies, view_instances
from bot.messages import Mention, Outbound
from bot.metrics import Metrics
from bot.models import (
    AuditEntry,
    CheckIn,
    Escalation,
    NegativeListing,
    OutboxMessage,
    Person,
    Problem,
    TaskInstance,
    Unit,
)
from bot.outbox import Batches, Queued, enqueue, enqueue_many
from bot.workdays import WorkCalendar
from jobs import breakdown
from jobs.env import JobEnv
from tests.test_delivery import Rig, rigged, webhook_calls
from tests.test_job_breakdown import DEC_1, env, expected_instances, posts  # noqa: F401

AT = datetime(2026, 11, 25, 23, 59, 59, tzinfo=SHANGHAI)


async def test_bulk_rows_read_back_as_the_orm_writes_them(db: Database) -> None:
    cols = ("at", "actor", "action", "entity", "entity_key", "before", "after", "detail")
    table = cast(Table, AuditEntry.__table__)
    values = (AT, "job:x", "a.b", "instance", "7", {"status": "待办"}, None, "说明")
    async with db.begin() as s:
        await s.execute(insert(table), [dict(zip(cols, values, strict=True))])
        assert await insert_rows(s, table, cols, [values, values]) == 2
    async with db.begin() as s:
        rows = (await s.execute(select(*(table.c[c] for c in cols)).order_by("id"))).all()
    assert [tuple(r) for r in rows] == [values] * 3
    async with db.begin() as s:  # stored alike too: a JSON null, not an SQL NULL
        nulls = (await s.execute(text('SELECT "after" IS NULL FROM audit_log ORDER BY id'))).all()
    assert len({tuple(n) for n in nulls}) == 1
    assert rows[0].at == AT  # an aware datetime, the same instant


async def test_record_many_is_record_for_each(db: Database) -> None:
    now = datetime(2026, 11, 26, 17, 30, tzinfo=SHANGHAI)
    changes = [(str(i), {"status": "pending"}, {"status": "overdue"}) for i in (3, 4)]
    async with db.begin() as s:
        for key, before, after in changes:
            audit.record(
                s, at=now, actor="job", action="x", entity="instance", key=key, before=before,
                after=after,
            )  # fmt: skip
        await audit.record_many(
            s, at=now, actor="job", action="x", entity="instance", changes=changes
        )
    async with db.begin() as s:
        got = (
            await s.execute(
                select(
                    AuditEntry.entity_key, AuditEntry.before, AuditEntry.after, AuditEntry.at
                ).order_by(AuditEntry.id)
            )
        ).all()
    assert got[:2] == got[2:]


async def test_enqueue_many_queues_in_order_and_skips_known_keys(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    from bot.outbox import Target

    to = Target("wecom", "wrkA", group_key="g_a")
    now = clock.now()
    async with db.begin() as s:
        await enqueue(s, Outbound("已在队列"), to=to, kind="k", dedupe_key="k:1", now=now)
        await enqueue_many(
            s,
            [
                Queued(
                    Outbound(f"第{i}条", mentions=(Mention("甲", "u1"),)), to, "k", f"k:{i}", True
                )
                for i in (1, 2, 3)
            ],
            now=now,
        )
    async with db.begin() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(r.dedupe_key, r.body["body"]) for r in rows] == [
        ("k:1", "已在队列"),
        ("k:2", "第2条"),
        ("k:3", "第3条"),
    ]
    assert rows[1].mergeable and rows[1].body["mentions"][0]["user_id"] == "u1"
    assert rows[1].next_attempt_at == now and rows[1].group_key == "g_a"
    # Twice in one transaction, a thousand rows whose keys sort against the order given:
    # queued in the order given (on PostgreSQL through a temporary table, made and dropped
    # by each call).
    keys = [f"k:{i:04d}" for i in range(1000, 0, -1)]
    async with db.begin() as s:
        for half in (keys[:500], keys[500:]):
            await enqueue_many(s, [Queued(Outbound(k), to, "k", k) for k in half], now=now)
    async with db.begin() as s:
        queued = (
            await s.scalars(select(OutboxMessage.dedupe_key).order_by(OutboxMessage.id))
        ).all()
    assert queued == ["k:1", "k:2", "k:3", *keys]


async def test_batches_queue_every_post_in_order_while_the_next_batch_is_made(
    db: Database, clock: FixedClock
) -> None:
    from bot.outbox import Target

    to, now = Target("wecom", "wrkA", group_key="g_a"), clock.now()
    keys = [f"b:{i:03d}" for i in range(250, 0, -1)]  # sorted against the order given
    async with db.begin() as s:
        await enqueue(s, Outbound("已在队列"), to=to, kind="k", dedupe_key="b:007", now=now)
        async with Batches(s, now, at_once=40) as posts:
            for key in keys:
                await posts.add(Queued(Outbound(key), to, "k", key))
                # The session is the batches' until the block ends: after the first batch
                # was handed over, a write is in flight while the posts are added.
                if posts.count == 41:
                    assert posts._writing is not None
    assert posts.count == 250
    async with db.begin() as s:
        queued = (
            await s.scalars(select(OutboxMessage.dedupe_key).order_by(OutboxMessage.id))
        ).all()
    assert queued == ["b:007", *(k for k in keys if k != "b:007")]


async def test_an_error_while_batches_are_written_rolls_back_all_of_them(
    db: Database, clock: FixedClock
) -> None:
    from bot.outbox import Target

    to, now = Target("wecom", "wrkA", group_key="g_a"), clock.now()
    with pytest.raises(RuntimeError, match="渲染失败"):
        async with db.begin() as s, Batches(s, now, at_once=10) as posts:
            for i in range(25):
                await posts.add(Queued(Outbound(f"第{i}条"), to, "k", f"e:{i}"))
            raise RuntimeError("渲染失败")  # while the second batch is being written
    async with db.begin() as s:  # the connection went back to the pool in a sound state
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_the_window_counts_from_when_the_requests_were_made() -> None:
    limiter, t0 = RollingLimiter(), datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
    assert limiter.take("robot", 20, 20, t0)
    limiter.settle("robot", 20, 20, t0, t0 + timedelta(seconds=8))  # 20 parts took 8 s
    assert not limiter.take("robot", 20, 1, t0 + timedelta(seconds=61))
    assert limiter.free_at("robot", 20, 1, t0 + timedelta(seconds=61)) == t0 + timedelta(seconds=68)
    assert limiter.take("robot", 20, 1, t0 + timedelta(seconds=68))
    # A post charged 5 whose first request failed made 1: the other 4 are given back.
    t1 = t0 + timedelta(minutes=5)
    assert limiter.take("bot", 5, 5, t1)
    limiter.settle("bot", 5, 5, t1, t1 + timedelta(seconds=1), made=1)
    assert limiter.used("bot", t1 + timedelta(seconds=1)) == 1


async def test_a_message_requeued_behind_a_remembered_head_still_goes_first(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    async with rigged(database_url, aiohttp_server, tmp_path, clock) as rig:
        await _requeued_goes_first(rig)


async def _requeued_goes_first(rig: Rig) -> None:
    await rig.queue("g_b", "乙群 第0条")
    async with rig.db.begin() as s:
        await s.execute(update(OutboxMessage).values(status="dead"))
        (old,) = (await s.scalars(select(OutboxMessage.id))).all()
    await rig.queue("g_a", "甲群 第1条")
    await rig.queue("g_b", "乙群 第1条")
    worker = DeliveryWorker(
        rig.db, rig.worker.senders, rig.deployment, rig.clock, metrics=Metrics(), concurrency=1
    )
    rig.wecom.delay_next(1, 0.3)  # 甲群's send is slow: 乙群's head waits, remembered
    flushing = asyncio.create_task(worker.flush())
    for _ in range(200):
        async with rig.db.begin() as s:
            sending = await s.scalar(
                select(OutboxMessage.id).where(OutboxMessage.status == "sending")
            )
        if sending is not None:
            break
        await asyncio.sleep(0.01)
    async with rig.db.begin() as s:  # an admin re-queues the older message meanwhile
        assert await retry_dead(s, old, rig.clock.now()) == 1
    await flushing
    key_b = rig.deployment.secret(
        next(g for g in rig.deployment.spec.groups if g.id == "g_b").channel.key
    )
    sent = [c.body.decode() for c in webhook_calls(rig.wecom, key_b or "")]
    assert [("第0条" in b, "第1条" in b) for b in sent] == [(True, False), (False, True)]


async def test_the_breakdown_names_the_units_of_named_tasks_lead_first(
    env: JobEnv,  # noqa: F811
) -> None:
    assert await breakdown.run(env, DEC_1)
    got = await posts(env.db)
    # T59 is owed by 公安局 (c3), 教育局 and 卫健委 (c6, 教育局 its lead), 住建局 (c5).
    assert "机关党支部标准化规范化建设达标验收（教育局、卫健委）" in got["g_c6"]
    assert "机关党支部标准化规范化建设达标验收（公安局）" in got["g_c3"]
    assert "达标验收" not in got["g_c1"]
    # The summary counts each community's instances shown: December's own and those due in it.
    start, end = datetime(2026, 12, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI)
    async with env.db.begin() as s:
        shown = await s.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(
                (TaskInstance.period == "2026-12")
                | ((TaskInstance.due_at >= start) & (TaskInstance.due_at < end))
            )
        )
    summed = sum(int(n) for n in re.findall(r"共 (\d+) 条待报送", got["g_admins"]))
    assert summed == shown >= expected_instances(env.deployment, "2026-12")


def test_reached_by_is_the_latest_deadline_that_late() -> None:
    calendar = WorkCalendar.official()
    for today in (date(2026, 10, 9), date(2026, 11, 26), date(2027, 2, 18)):  # around holidays
        for n in (1, 3, 7, 20):
            last = reached_by(calendar, today, n)
            for offset in range(-60, 5):
                due = today + timedelta(days=offset)
                assert (late_workdays(calendar, due, today) >= n) == (due <= last), (today, n, due)


async def test_negative_lists_keep_the_first_reason_and_audit_what_was_added(
    env: JobEnv,  # noqa: F811
) -> None:
    now = env.clock.now()
    async with env.db.begin() as s:
        a, b = (await s.scalars(select(Unit.id).order_by(Unit.id).limit(2))).all()
        await put_on_negative_lists(s, [(a, "2026-11", "早先的原因")], now)
        await put_on_negative_lists(
            s, [(a, "2026-11", "又一次"), (b, "2026-11", "第一条"), (b, "2026-11", "第二条")], now
        )
    async with env.db.begin() as s:
        listed = (
            await s.execute(
                select(NegativeListing.unit_id, NegativeListing.reason).order_by(
                    NegativeListing.unit_id
                )
            )
        ).all()
        audited = (
            await s.execute(
                select(AuditEntry.entity_key, AuditEntry.after)
                .where(AuditEntry.action == "negative_list.add")
                .order_by(AuditEntry.id)
            )
        ).all()
    assert [tuple(r) for r in listed] == [(a, "早先的原因"), (b, "第一条")]
    assert [tuple(r) for r in audited] == [
        (str(a), {"period": "2026-11", "reason": "早先的原因"}),
        (str(b), {"period": "2026-11", "reason": "第一条"}),
    ]


async def test_steps_are_taken_once_and_only_the_new_ones_come_back(db: Database) -> None:
    now = datetime(2026, 11, 27, 9, 30, tzinfo=SHANGHAI)
    first = [("instance", 1, 1), ("instance", 2, 1), ("problem", 1, 1)]
    async with db.begin() as s:
        assert await take_steps(s, first, now) == set(first)
        # In the same transaction, and again in the same call: each step is taken once.
        again = [("instance", 1, 1), ("instance", 1, 2), ("instance", 1, 2), ("problem", 1, 2)]
        assert await take_steps(s, again, now) == {("instance", 1, 2), ("problem", 1, 2)}
    async with db.begin() as s:
        many = [("instance", i, 3) for i in range(25_000)]  # more than one batch of rows
        assert await take_steps(s, [*many, ("instance", 2, 1)], now) == set(many)
        stored = (
            await s.execute(select(Escalation.subject, Escalation.subject_id, Escalation.step))
        ).all()
        stamps = set(await s.scalars(select(Escalation.taken_at)))
    assert len(stored) == len({tuple(r) for r in stored}) == 5 + len(many)
    assert stamps == {now}


# More ids than any backend binds one by one: PostgreSQL (asyncpg) takes 32,767 parameters,
# SQLite builds 32,766 or 250,000.
HUGE = 250_001


async def test_lists_of_more_ids_than_a_statement_may_bind(env: JobEnv) -> None:  # noqa: F811
    assert await breakdown.run(env, DEC_1)  # December's instances
    now = datetime(2027, 1, 20, 9, tzinfo=SHANGHAI)  # December's deadlines all passed
    start, end = datetime(2026, 12, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI)
    async with env.db.begin() as s:
        units = list((await s.scalars(select(Unit.id).order_by(Unit.id))).all())
        first = await s.scalar(select(TaskInstance).where(TaskInstance.unit_id == units[0]))
        someone = await s.scalar(select(Person.id))
        assert first is not None and someone is not None
        s.add(Problem(unit_id=units[1], description="台账不全", deadline=now, found_at=now))
        s.add(
            CheckIn(
                instance_id=first.id, reporter_id=someone, for_unit_id=units[0], text="已开展",
                platform="dingtalk", platform_msg_id="m1", submitted_at=now, updated_at=now,
            )
        )  # fmt: skip
    padded = units + list(range(10**7, 10**7 + HUGE))  # the real ids among ids of no unit
    async with env.db.begin() as s:
        reads = {
            "mentions_for": lambda ids: mentions_for(s, ids, "liaison", "dingtalk"),
            "lead_of": lambda ids: lead_of(s, ids),
            "liaison_names": lambda ids: liaison_names(s, ids),
            "unit_tallies": lambda ids: unit_tallies(s, ids, ("2026-12",), now),
            "view_instances": lambda ids: view_instances(s, ids, ("2026-12",)),
            "overdue": lambda ids: overdue(s, now=now, unit_ids=ids, per="unit", cap=2),
            "overdue_due_between": lambda ids: overdue_due_between(
                s, start, end, now=now, unit_ids=ids, limit=5
            ),
            "open_problems": lambda ids: open_problems(s, ids),
            "review queue": lambda ids: reviews.queue(s, ids, 5),
        }
        for name, read in reads.items():
            few, many = await read(units), await read(padded)
            assert few, name  # something to compare
            assert many == few, name
