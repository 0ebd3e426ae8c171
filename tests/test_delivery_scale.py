"""What delivering one message costs the worker must not grow with the number of lanes: the
statements it runs and the rows it reads per message are the same with 50 lanes waiting for
their robot's window as with 500. Also the pieces that make it so: a head its robot has no
room for is parked in the database (not read again and again), outcomes are written many
posts to a statement with each post's own time, and a group is found without a scan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from bot.clock import FixedClock
from bot.delivery import DeliveryWorker
from bot.delivery.limits import RollingLimiter
from bot.delivery.records import mark_sent
from bot.messages import Outbound
from bot.metrics import Metrics
from bot.models import OutboxMessage
from bot.outbox import Queued, enqueue_many, groups_of
from tests.test_delivery import KEY_A, Rig, config, rigged, webhook_calls

SIZES = (50, 500)
TRICKLE = 12  # messages sent one at a time while the lanes wait


def lane_key(size: int, i: int) -> str:
    return f"lane-robot-{size}-{i:03d}"


def lanes_config() -> dict[str, Any]:
    """Beside the usual groups, a robot group per lane allowed one post a minute (so that its
    second message must wait), and ``g_fast``, a robot with room to spare."""
    data = config()
    for size in SIZES:
        data["groups"] += [
            {
                "id": f"g{size}_{i:03d}",
                "name": f"第{i}共同体群",
                "platform": "wecom",
                "chat_id": f"wrk{size}_{i:03d}",
                "channel": {
                    "type": "wecom_webhook",
                    "key": lane_key(size, i),
                    "rate_per_minute": 1,
                },
            }
            for i in range(size)
        ]
    data["groups"].append(
        {
            "id": "g_fast",
            "name": "快群",
            "platform": "wecom",
            "chat_id": "wrkFAST",
            "channel": {"type": "wecom_webhook", "key": "fast-robot", "rate_per_minute": 600},
        }
    )
    return data


@pytest.fixture
async def rig(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[Rig]:
    async with rigged(database_url, aiohttp_server, tmp_path, clock) as r:
        yield r


@dataclass
class Cost:
    statements: int = 0
    rows: int = 0  # outbox rows read as objects


@contextmanager
def counting(rig: Rig, cost: Cost) -> Iterator[Cost]:
    """The statements run and the outbox rows loaded meanwhile, added to ``cost``
    (SQLAlchemy's own events: nothing of the bot is replaced)."""

    def statement(*_: Any) -> None:
        cost.statements += 1

    def loaded(*_: Any) -> None:
        cost.rows += 1

    engine = rig.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(OutboxMessage, "load", loaded)
    try:
        yield cost
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(OutboxMessage, "load", loaded)


async def queue(rig: Rig, group: str, bodies: list[str]) -> None:
    to = rig.target(group)
    items = [Queued(Outbound(b), to, "notice", f"scale:{group}:{b}") for b in bodies]
    async with rig.db.begin() as session:
        await enqueue_many(session, items, now=rig.clock.now())


async def per_message(rig: Rig, size: int) -> tuple[float, float, float, float]:
    """Statements and rows per message delivered, first from a backlog over ``size`` lanes,
    then for messages sent one at a time while those lanes wait for their robot's window."""
    for i in range(size):
        await queue(rig, f"g{size}_{i:03d}", [f"第{i}群 第1条", f"第{i}群 第2条"])
    with counting(rig, Cost()) as backlog:
        assert await rig.worker.flush() == size  # each lane's first; its second must wait
    trickle = Cost()
    for n in range(TRICKLE):
        await queue(rig, "g_fast", [f"{size} 路时的第{n}条"])
        with counting(rig, trickle):
            assert await rig.worker.flush() == 1
    rig.advance(60)
    assert await rig.worker.flush() == size
    for i in range(size):  # everything, once, in order
        assert rig.wecom.texts(lane_key(size, i)) == [f"第{i}群 第1条", f"第{i}群 第2条"]
    return (
        backlog.statements / size,
        backlog.rows / size,
        trickle.statements / TRICKLE,
        trickle.rows / TRICKLE,
    )


async def test_statements_and_rows_per_message_do_not_grow_with_the_lanes(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    async with rigged(database_url, aiohttp_server, tmp_path, clock, data=lanes_config()) as rig:
        for size in SIZES:
            for i in range(size):
                rig.wecom.add_robot(lane_key(size, i))
        rig.wecom.add_robot("fast-robot")
        few, many = [await per_message(rig, size) for size in SIZES]
    backlog_statements, backlog_rows, trickle_statements, trickle_rows = many
    assert backlog_statements <= few[0] + 0.1 and backlog_statements <= 2
    assert backlog_rows <= few[1] + 0.1 and backlog_rows <= 2  # the head; once again when parked
    # One at a time, a message costs a handful of statements and a row or two, however many
    # lanes wait: none of them is looked at again.
    assert trickle_statements <= few[2] and trickle_statements <= 6
    assert trickle_rows <= few[3] and trickle_rows <= 2


async def test_a_head_with_no_room_is_parked_until_its_window_frees(rig: Rig) -> None:
    for i in range(22):
        await rig.queue("g_a", f"甲群通知 {i:02d}")
    assert await rig.worker.flush() == 20
    rows = await rig.rows()
    parked, behind = rows[20], rows[21]
    assert (parked.status, parked.attempts, parked.last_error) == ("pending", 0, None)
    assert parked.next_attempt_at == rig.clock.now() + timedelta(seconds=60)
    assert behind.next_attempt_at == rig.clock.now()  # it waits behind the head, not parked
    # Another instance, whose own window is empty, does not overtake the robot's limit.
    other = DeliveryWorker(
        rig.db, rig.worker.senders, rig.deployment, rig.clock, metrics=Metrics(), instance="b:1"
    )
    assert await other.flush() == 0
    rig.advance(59)
    assert await rig.worker.flush() == 0
    rig.advance(1)
    assert await rig.worker.flush() == 2
    assert rig.wecom.texts(KEY_A) == [f"甲群通知 {i:02d}" for i in range(22)]
    assert len(webhook_calls(rig.wecom, KEY_A)) == 22  # not one refused and sent again


async def test_posts_recorded_together_keep_each_their_own_time(rig: Rig) -> None:
    for i in range(3):
        await rig.queue("g_a", f"提醒 {i}", kind="remind", coalesce=i > 0)
    t0 = rig.clock.now()
    async with rig.db.begin() as session:
        ids = list((await session.scalars(select(OutboxMessage.id).order_by("id"))).all())
        claimed = {"status": "sending", "claimed_by": "me:1", "claimed_at": t0}
        await session.execute(update(OutboxMessage).values(**claimed))
        await session.execute(  # the third rode along with the second
            update(OutboxMessage)
            .where(OutboxMessage.id == ids[2])
            .values(status="merged", merged_into=ids[1], claimed_by=None)
        )
    times = {ids[0]: t0 + timedelta(seconds=1), ids[1]: t0 + timedelta(seconds=2)}
    async with rig.db.begin() as session:
        assert await mark_sent(session, times, instance="other:2", coalesced={ids[1]}) == set()
    async with rig.db.begin() as session:
        assert await mark_sent(session, times, instance="me:1", coalesced={ids[1]}) == set(ids[:2])
    rows = await rig.rows()
    assert [(r.status, r.sent_at, r.claimed_by) for r in rows] == [
        ("sent", times[ids[0]], None),
        ("sent", times[ids[1]], None),
        ("sent", times[ids[1]], None),
    ]


def test_groups_are_found_as_by_a_scan(rig: Rig) -> None:
    index = groups_of(rig.deployment)
    assert groups_of(rig.deployment) is index  # built once per loaded configuration
    chats = [(g.platform, g.chat_id) for g in rig.deployment.spec.groups]
    chats += [("console", g.id) for g in rig.deployment.spec.groups]
    chats += [("wecom", "wrkNOWHERE"), ("dingtalk", "wrkA"), ("console", "g_nowhere")]
    for platform, chat in chats:
        first = next(  # what a walk through the configured groups finds
            (
                g
                for g in rig.deployment.spec.groups
                if (g.platform, g.chat_id) == (platform, chat)
                or (platform == "console" and g.id == chat)
            ),
            None,
        )
        assert index.find(platform, chat) is first
    for group in rig.deployment.spec.groups:
        assert index.by_key(group.id) is group
    assert index.by_key("g_nowhere") is None


def test_the_limiter_forgets_robots_whose_window_is_empty(clock: FixedClock) -> None:
    limiter, t0 = RollingLimiter(), clock.now()
    for i in range(3000):  # a reply to each of 3,000 people
        assert limiter.take(f"chat:wecom:u{i}", 20, 1, t0)
    later = t0 + timedelta(seconds=61)
    assert limiter.take("chat:wecom:late", 20, 1, later)
    assert limiter.held == 1  # not one per person ever written to
    assert limiter.used("chat:wecom:late", later) == 1 and limiter.used("chat:wecom:u1", later) == 0
