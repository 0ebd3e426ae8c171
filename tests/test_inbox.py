"""The inbox under load: ids written in batches by one writer, each message handled once, a
bounded number at a time, and callbacks held back once the queue is full."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select, update

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.inbound import MAX_ATTEMPTS, ORPHANED_AFTER, HandlingGate, Inbox, take
from bot.messages import ChatRef, Inbound, Media, ReplyRoute, inbound_record
from bot.metrics import Metrics
from bot.models import InboundSeen

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)


def message(event_id: str, text: str = "打卡 1 已完成") -> Inbound:
    return Inbound(
        platform="dingtalk",
        event_id=event_id,
        chat=ChatRef("dingtalk", "cidC1==", is_group=True),
        sender_id="staff_a_ll",
        sender_name="甲联络员",
        text=text,
        received_at=NOW,
        source="dingtalk_http",
    )


class Recorder:
    """A dispatch that can be held: `release` cleared keeps every started message waiting."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.handled: list[str] = []
        self.texts: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, msg: Inbound) -> None:
        self.started.append(msg.event_id)
        self.texts.append(msg.text)
        await self.release.wait()
        self.handled.append(msg.event_id)


async def inserts_into_seen(db: Database) -> list[int]:
    """Counts the INSERT statements into inbound_seen on this engine (observed, not altered),
    as the driver runs them: the claims skip SQLAlchemy."""
    seen = [0]

    def note(statement: str) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INBOUND_SEEN"):
            seen[0] += 1

    if db.dialect == "sqlite":  # one pooled connection: every statement passes through it
        async with db.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            await driver.set_trace_callback(note)
    else:  # asyncpg's query loggers, on every connection made from here on
        await db.engine.dispose()
        event.listen(
            db.engine.sync_engine,
            "connect",
            lambda conn, _: conn.driver_connection.add_query_logger(lambda q: note(q.query)),
        )
    return seen


async def seen_rows(db: Database) -> int:
    async with db.begin() as session:
        return int(await session.scalar(select(func.count()).select_from(InboundSeen)) or 0)


async def test_a_burst_is_claimed_in_a_few_inserts_and_each_message_handled_once(
    db: Database,
) -> None:
    record = Recorder()
    inbox = Inbox(db, FixedClock(NOW), record)
    inserts = await inserts_into_seen(db)
    ids = [f"m{i}" for i in range(200)]
    # Every callback twice at once, as a platform retrying a slow answer would.
    results = await asyncio.gather(*(inbox.accept([message(i)]) for i in ids + ids))
    await inbox.drain()
    assert sorted(record.handled) == sorted(ids)
    assert sum(len(r) for r in results) == 200  # each id went to exactly one caller
    assert await seen_rows(db) == 200
    assert 1 <= inserts[0] < 20  # batched, not one transaction per message


async def test_an_id_twice_in_one_call_and_a_seen_id_are_duplicates(db: Database) -> None:
    record = Recorder()
    metrics = Metrics()
    inbox = Inbox(db, FixedClock(NOW), record, metrics=metrics)
    fresh = await inbox.accept([message("a"), message("a"), message("b")])
    assert [m.event_id for m in fresh] == ["a", "b"]
    await inbox.drain()
    again = Inbox(db, FixedClock(NOW), record)  # a restart, or another instance
    assert await again.accept([message("b"), message("c")]) == [message("c")]
    await again.drain()
    assert record.handled == ["a", "b", "c"]
    counted = {
        (s.labels["outcome"], s.value)
        for metric in metrics.registry.collect()
        for s in metric.samples
        if s.name == "duban_inbound_total"
    }
    assert counted == {("accepted", 2.0), ("duplicate", 1.0)}


async def test_work_runs_in_a_few_workers_in_arrival_order(db: Database) -> None:
    record = Recorder()
    record.release.clear()
    inbox = Inbox(db, FixedClock(NOW), record, workers=2)
    for i in range(6):
        await inbox.accept([message(f"m{i}")])
    await asyncio.sleep(0)  # let the workers take their first message
    assert record.started == ["m0", "m1"]
    record.release.set()
    await inbox.drain()
    assert record.started == [f"m{i}" for i in range(6)]  # taken in arrival order
    assert sorted(record.handled) == record.started


async def test_a_full_queue_holds_the_callback_until_a_worker_frees_room(db: Database) -> None:
    record = Recorder()
    record.release.clear()
    inbox = Inbox(db, FixedClock(NOW), record, workers=1, backlog=1, limit=2)
    for i in range(3):  # one in the worker, two waiting: full
        await inbox.accept([message(f"m{i}")])
    held = asyncio.create_task(inbox.accept([message("m3")]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not held.done()  # answered only once there is room, not dropped
    record.release.set()
    assert [m.event_id for m in await held] == ["m3"]
    await inbox.drain()
    assert record.handled == ["m0", "m1", "m2", "m3"]


async def test_messages_past_the_backlog_wait_in_the_database_not_in_memory(
    db: Database,
) -> None:
    record = Recorder()
    record.release.clear()
    inbox = Inbox(db, FixedClock(NOW), record, workers=1, backlog=2)
    ids = [f"m{i}" for i in range(7)]
    for i in ids:  # none is held back: the backlog is not the limit
        assert [m.event_id for m in await inbox.accept([message(i)])] == [i]
    await asyncio.sleep(0)
    assert inbox.waiting == 6  # one running
    async with db.begin() as session:  # the rest are read back from here: alter them there
        await session.execute(
            update(InboundSeen)
            .where(InboundSeen.event_id == "m5")
            .values(body=inbound_record(dataclasses.replace(message("m5"), text="改过的")))
        )
    record.release.set()
    await inbox.drain()
    assert record.handled == ids  # in arrival order, none lost
    assert record.texts[5] == "改过的"  # m0 ran, m1–m2 were kept in memory, m3– read back
    assert inbox.waiting == 0


async def test_a_failing_message_does_not_stop_the_others(db: Database, caplog: Any) -> None:
    handled: list[str] = []

    async def dispatch(msg: Inbound) -> None:
        if msg.event_id == "bad":
            raise RuntimeError("boom")
        handled.append(msg.event_id)

    inbox = Inbox(db, FixedClock(NOW), dispatch, workers=1)
    for i in ("a", "bad", "b"):
        await inbox.accept([message(i)])
    await inbox.drain()
    assert handled == ["a", "b"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "handling dingtalk message bad failed"
    ]


async def test_an_id_that_cannot_be_stored_fails_alone(db: Database) -> None:
    record = Recorder()
    inbox = Inbox(db, FixedClock(NOW), record)
    # A lone surrogate cannot be written as UTF-8: no driver stores that id.
    ids = ["m0", "m1\ud800", "m2"]
    results = await asyncio.gather(
        *(inbox.accept([message(i)]) for i in ids), return_exceptions=True
    )
    await inbox.drain()
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(results[1], Exception)  # answered with an error
    assert sorted(record.handled) == ["m0", "m2"]
    assert await seen_rows(db) == 2


# -- nothing accepted is lost -----------------------------------------------------------------


async def waiting(db: Database) -> list[tuple[str, int]]:
    """The messages stored and not yet handled: (id, attempts)."""
    async with db.begin() as session:
        rows = await session.execute(
            select(InboundSeen.event_id, InboundSeen.attempts)
            .where(InboundSeen.handled_at.is_(None))
            .order_by(InboundSeen.seen_at, InboundSeen.event_id)
        )
        return [(e, a) for e, a in rows]


def full_message(event_id: str) -> Inbound:
    """Every field set, so that what comes back from storage can be compared whole."""
    return dataclasses.replace(
        message(event_id),
        chat=ChatRef("dingtalk", "cidC1==", is_group=True, title="第一共同体"),
        media=(Media("image", "dl-code-1"), Media("file", "dl-code-2")),
        mentions=("staff_b",),
        reply_route=ReplyRoute("dingtalk_session", "https://oapi.example/s?x=1", NOW),
    )


async def test_messages_accepted_by_a_process_that_died_are_handled_after_it(
    db: Database,
) -> None:
    held = Recorder()
    held.release.clear()  # the first process never gets past its first message
    first = Inbox(db, FixedClock(NOW), held, workers=1)
    sent = [full_message(f"m{i}") for i in range(4)]
    for msg in sent:
        await first.accept([msg])
    await asyncio.sleep(0)
    assert held.started == ["m0"] and held.handled == []
    assert await waiting(db) == [(f"m{i}", 0) for i in range(4)]

    got: list[Inbound] = []

    async def handle(msg: Inbound) -> None:
        got.append(msg)

    later = Inbox(db, FixedClock(NOW + timedelta(minutes=5)), handle)
    assert await later.recover() == 4
    await later.drain()
    assert got == sent  # whole, and in the order they came
    assert await waiting(db) == []
    async with db.begin() as session:
        bodies = (await session.scalars(select(InboundSeen.body))).all()
    assert bodies == [None] * 4  # kept only until handled
    assert await later.recover(timedelta(0)) == 0  # handled once, not again


async def test_a_sweep_leaves_recent_messages_and_this_process_own_alone(db: Database) -> None:
    held = Recorder()
    held.release.clear()
    clock = FixedClock(NOW)
    inbox = Inbox(db, clock, held, workers=1)
    for i in range(3):
        await inbox.accept([message(f"m{i}")])
    other = Inbox(db, clock, Recorder())
    assert await other.recover() == 0  # the accepting process may be busy with them yet
    clock.at += ORPHANED_AFTER
    assert await inbox.recover() == 0  # its own, queued or running
    assert await other.recover() == 3  # gone longer than anyone takes: taken over
    await other.drain()
    assert await waiting(db) == []


async def test_a_message_whose_handling_fails_is_tried_again_then_set_aside(
    db: Database, caplog: Any
) -> None:
    tries: list[str] = []

    async def dispatch(msg: Inbound) -> None:
        tries.append(msg.event_id)
        raise RuntimeError("database gone")

    clock = FixedClock(NOW)
    inbox = Inbox(db, clock, dispatch)
    await inbox.accept([message("m1")])
    await inbox.drain()
    assert await waiting(db) == [("m1", 0)]  # not lost: waiting for a sweep
    for attempt in range(1, MAX_ATTEMPTS + 1):
        clock.at += ORPHANED_AFTER
        assert await inbox.recover() == 1
        await inbox.drain()
        assert await waiting(db) == [("m1", attempt)]
    clock.at += ORPHANED_AFTER
    assert await inbox.recover() == 0
    assert tries == ["m1"] * (MAX_ATTEMPTS + 1)
    assert await waiting(db) == []  # set aside, so no restart dies on it forever
    assert f"dingtalk message m1 set aside unhandled after {MAX_ATTEMPTS} attempts" in [
        r.getMessage() for r in caplog.records if r.levelname == "ERROR"
    ]


async def test_only_one_handling_of_a_message_takes_it(db: Database) -> None:
    held = Recorder()
    held.release.clear()  # the inbox's own handling never finishes: only the test's takes
    inbox = Inbox(db, FixedClock(NOW), held, workers=1)
    inbox_msg, direct = message("m1"), message("never-accepted")
    await inbox.accept([inbox_msg])
    async with db.begin() as session:
        assert await take(session, inbox_msg, NOW)
    async with db.begin() as session:
        assert not await take(session, inbox_msg, NOW)  # a recovered copy does nothing
    async with db.begin() as session:
        assert await take(session, direct, NOW)  # handed over without the inbox
    try:
        async with db.begin() as session:
            assert await take(session, message("m2"), NOW) is True
            raise RuntimeError("the handling failed")
    except RuntimeError:
        pass
    await inbox.accept([message("m2")])
    async with db.begin() as session:  # rolled back with the handling: still to be done
        assert await take(session, message("m2"), NOW)


async def test_close_keeps_what_is_queued_for_the_next_start(db: Database) -> None:
    held = Recorder()
    held.release.clear()
    inbox = Inbox(db, FixedClock(NOW), held, workers=1)
    for i in range(3):
        await inbox.accept([message(f"m{i}")])
    await asyncio.sleep(0)
    closing = asyncio.create_task(inbox.close())
    await asyncio.sleep(0)
    held.release.set()  # the one being handled finishes; the others are not started
    await closing
    assert held.handled == ["m0"]
    assert await waiting(db) == [("m1", 0), ("m2", 0)]


async def test_a_backlog_is_handed_over_in_batches_in_order(db: Database) -> None:
    batches: list[list[str]] = []
    single = Recorder()

    async def handle_many(msgs: Any) -> None:
        batches.append([m.event_id for m in msgs])

    inbox = Inbox(db, FixedClock(NOW), single, dispatch_many=handle_many, at_once=3)
    await inbox.accept([message(f"m{i}") for i in range(7)])
    await inbox.drain()
    assert batches == [["m0", "m1", "m2"], ["m3", "m4", "m5"]]
    assert single.handled == ["m6"]  # one alone goes the ordinary way
    assert await waiting(db) == []  # all marked handled


async def test_a_batch_that_fails_is_left_whole_for_the_sweep(db: Database, caplog: Any) -> None:
    async def broken(msgs: Any) -> None:
        raise RuntimeError("database gone")

    inbox = Inbox(db, FixedClock(NOW), Recorder(), dispatch_many=broken, at_once=5)
    await inbox.accept([full_message(f"m{i}") for i in range(5)])
    await inbox.drain()
    assert await waiting(db) == [(f"m{i}", 0) for i in range(5)]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["handling dingtalk message m0 and the 4 after it failed"]
    got: list[str] = []

    async def handle_many(msgs: Any) -> None:
        got.extend(m.event_id for m in msgs)

    later = Inbox(db, FixedClock(NOW + timedelta(minutes=5)), Recorder(), dispatch_many=handle_many)
    assert await later.recover() == 5
    await later.drain()
    assert got == [f"m{i}" for i in range(5)] and await waiting(db) == []


def test_handling_takes_its_share_of_the_loop_across_all_workers() -> None:
    gate = HandlingGate(0.25)
    assert gate.rest(1.0) == 0.0
    for _ in range(4):  # four workers' batches of 10 ms end together
        gate.handled(1.0, 0.010)
    # Each put off every worker's next batch by three times its length: 120 ms in all.
    assert abs(gate.rest(1.0) - 0.120) < 1e-9
    assert abs(gate.rest(1.1) - 0.020) < 1e-9
    gate.handled(1.2, 0.010)  # a batch ending after the gate opened starts from its end
    assert abs(gate.rest(1.2) - 0.030) < 1e-9
