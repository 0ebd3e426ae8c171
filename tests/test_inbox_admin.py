"""Set-aside inbound messages: set aside by real failed handlings, listed, given back to the
inbox, and then handled exactly once; the same through `duban inbox list|replay`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from sqlalchemy import select, text, update

from bot.clock import FixedClock
from bot.db import Database
from bot.inbound import MAX_ATTEMPTS, ORPHANED_AFTER, Inbox
from bot.inbox_admin import count, describe, give_back, is_seen, seen_query, set_aside, watch
from bot.messages import ChatRef, Inbound
from bot.metrics import Metrics
from bot.models import InboundSeen
from tests.test_inbox import NOW, message


class Handling:
    """A dispatch that fails while `broken`, and records what it handled once it works."""

    def __init__(self) -> None:
        self.broken = True
        self.tries: list[str] = []
        self.handled: list[str] = []

    async def __call__(self, msg: Inbound) -> None:
        self.tries.append(msg.event_id)
        if self.broken:
            raise RuntimeError("handler broken")
        self.handled.append(msg.event_id)


async def sweep_until_set_aside(inbox: Inbox, clock: FixedClock) -> None:
    """The sweeps a running instance makes: each retries the failed messages once, and the
    one after MAX_ATTEMPTS failures sets them aside."""
    for _ in range(MAX_ATTEMPTS + 1):
        clock.at += ORPHANED_AFTER
        await inbox.recover()
        await inbox.drain()


async def test_a_set_aside_message_is_listed_given_back_and_then_handled_once(
    db: Database,
) -> None:
    clock, handling = FixedClock(NOW), Handling()
    inbox = Inbox(db, clock, handling)
    metrics = Metrics()
    watch(metrics, db)
    await inbox.accept([message("m1", "打卡 1 已完成，附照片三张\n会议记录见附件" + "。" * 60)])
    await inbox.drain()
    await sweep_until_set_aside(inbox, clock)
    assert handling.tries == ["m1"] * (MAX_ATTEMPTS + 1)
    handling.broken = False
    await inbox.accept([message("m2")])  # handled at once: not set aside, not listed
    await inbox.drain()

    async with db.begin() as session:
        [entry] = await set_aside(session)
        assert await count(session) == 1
    assert (entry.platform, entry.event_id, entry.attempts) == ("dingtalk", "m1", MAX_ATTEMPTS)
    assert entry.seen_at == NOW and entry.readable
    assert entry.sender == "甲联络员（staff_a_ll）"
    assert entry.text == "打卡 1 已完成，附照片三张 会议记录见附件" + "。" * 18 + "…"
    assert describe(entry).startswith("dingtalk m1  收到于 2026-11-02 09:00  已尝试 3 次  甲联络员")
    assert b"duban_inbox_set_aside 1.0" in await metrics.render()
    clock.at += ORPHANED_AFTER
    assert await inbox.recover() == 0  # set aside: the sweeps leave it alone

    async with db.begin() as session:
        assert await give_back(session, [entry.key]) == [("dingtalk", "m1")]
    async with db.begin() as session:
        assert await give_back(session, [entry.key]) == []  # given back once only
        assert await set_aside(session) == []
    assert b"duban_inbox_set_aside 0.0" in await metrics.render()

    clock.at += ORPHANED_AFTER
    assert await inbox.recover() == 1  # the next sweep takes it, with its attempts anew
    await inbox.drain()
    clock.at += ORPHANED_AFTER
    assert await inbox.recover() == 0
    await inbox.drain()
    assert handling.handled == ["m2", "m1"]
    async with db.begin() as session:
        row = (await session.execute(select(InboundSeen).where(InboundSeen.event_id == "m1"))).one()
        assert row[0].handled_at is not None and row[0].body is None  # handled, not aside
        assert await give_back(session, [entry.key]) == []


async def test_a_message_given_back_that_fails_again_is_set_aside_again(db: Database) -> None:
    clock, handling = FixedClock(NOW), Handling()
    inbox = Inbox(db, clock, handling)
    await inbox.accept([message("m1")])
    await inbox.drain()
    await sweep_until_set_aside(inbox, clock)
    async with db.begin() as session:
        await give_back(session, [("dingtalk", "m1")])
    await sweep_until_set_aside(inbox, clock)  # still broken: tried MAX_ATTEMPTS times more
    assert handling.tries == ["m1"] * (2 * MAX_ATTEMPTS + 1)
    async with db.begin() as session:
        assert [e.attempts for e in await set_aside(session)] == [MAX_ATTEMPTS]


async def test_unknown_and_unset_aside_ids(db: Database) -> None:
    clock, handling = FixedClock(NOW), Handling()
    handling.broken = False
    inbox = Inbox(db, clock, handling)
    await inbox.accept([message("done")])
    await inbox.drain()
    async with db.begin() as session:
        assert await set_aside(session, "nope") == []
        assert not await is_seen(session, "nope")
        assert await give_back(session, [("dingtalk", "nope")]) == []
        assert await set_aside(session, "done") == []
        assert await is_seen(session, "done") and not await is_seen(session, "done", "wecom")
        assert await give_back(session, [("dingtalk", "done")]) == []
        assert await count(session) == 0


async def test_an_id_without_its_platform_is_looked_up_by_the_key(db: Database) -> None:
    """`duban inbox list --id X` names no platform: the lookup still goes through the key,
    which leads with the platform, instead of reading every id the inbox ever accepted."""
    sql = str(
        seen_query("m1").compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
    )
    async with db.begin() as session:
        if db.dialect == "sqlite":
            plan = " ".join(r[-1] for r in await session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "SEARCH inbound_seen USING" in plan and "platform=? AND event_id=?" in plan, plan
        else:
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(r[0] for r in await session.execute(text(f"EXPLAIN {sql}")))
            conds = [line for line in plan.splitlines() if "Index Cond" in line]
            assert conds and "platform" in conds[0] and "event_id" in conds[0], plan


async def duban(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
    env["DUBAN_DATABASE_URL"] = database_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "inbox",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_line_lists_and_replays(db: Database, database_url: str) -> None:
    clock, handling = FixedClock(NOW), Handling()
    inbox = Inbox(db, clock, handling)
    wecom_dup = dataclasses.replace(
        message("dup"), platform="wecom", chat=ChatRef("wecom", "wrkC1", is_group=True)
    )
    await inbox.accept(
        [message("m1"), message("m2"), message("garbled"), message("dup"), wecom_dup]
    )
    async with db.begin() as session:  # its stored copy is damaged: the inbox cannot read it
        await session.execute(
            update(InboundSeen).where(InboundSeen.event_id == "garbled").values(body={"x": 1})
        )
    await inbox.drain()
    await sweep_until_set_aside(inbox, clock)
    await inbox.close()

    # Processes that do not change anything run side by side: each takes seconds to start.
    listed, unknown, garbled, neither, twice = await asyncio.gather(
        duban(database_url, "list"),
        duban(database_url, "replay", "nope"),
        duban(database_url, "replay", "garbled"),
        duban(database_url, "replay"),
        duban(database_url, "replay", "dup"),
    )
    assert listed[0] == 0
    assert listed[1].splitlines() == [
        "搁置的消息 5 条 (set-aside messages):",
        "dingtalk dup  收到于 2026-11-02 09:00  已尝试 3 次  甲联络员（staff_a_ll）：打卡 1 已完成",
        "dingtalk garbled  收到于 2026-11-02 09:00  已尝试 0 次  （存储的消息无法读取，不能重放）",
        "dingtalk m1  收到于 2026-11-02 09:00  已尝试 3 次  甲联络员（staff_a_ll）：打卡 1 已完成",
        "dingtalk m2  收到于 2026-11-02 09:00  已尝试 3 次  甲联络员（staff_a_ll）：打卡 1 已完成",
        "wecom dup  收到于 2026-11-02 09:00  已尝试 3 次  甲联络员（staff_a_ll）：打卡 1 已完成",
        "重新处理：duban inbox replay <编号> 或 --all (replay one or all)",
    ]
    assert (unknown[0], unknown[2].strip()) == (1, "没有编号为 nope 的消息 (unknown message id)")
    assert (garbled[0], garbled[2].strip()) == (
        1,
        "消息 garbled 存储的内容无法读取，不能重放 (stored unreadably)",
    )
    assert neither[0] == 2 and "--all" in neither[2]  # neither an id nor --all
    assert (twice[0], twice[2].strip()) == (
        1,
        "编号 dup 在几个平台都有，请用 --platform 指明 (ambiguous id)",
    )

    one, on_wecom = await asyncio.gather(
        duban(database_url, "replay", "m1"),
        duban(database_url, "replay", "dup", "--platform", "wecom"),
    )
    assert one[0] == 0
    assert one[1].splitlines()[:2] == [
        "已交回收件箱 1 条 (handed back to the inbox):",
        "dingtalk m1",
    ]
    assert on_wecom[0] == 0
    assert on_wecom[1].splitlines()[:2] == [
        "已交回收件箱 1 条 (handed back to the inbox):",
        "wecom dup",
    ]
    again, everything = await asyncio.gather(
        duban(database_url, "replay", "m1"), duban(database_url, "replay", "--all")
    )
    assert (again[0], again[2].strip()) == (
        1,
        "消息 m1 没有被搁置：已处理或正在等待处理 (not set aside)",
    )
    assert everything[0] == 0
    assert everything[1].splitlines() == [
        "已交回收件箱 2 条 (handed back to the inbox):",
        "dingtalk dup",
        "dingtalk m2",
        "运行中的服务在一分钟内重新处理，未运行则在下次启动时处理",
        "另有 1 条存储的内容无法读取，仍搁置 (unreadable, left aside)",
    ]

    handling.broken = False  # the cause fixed; the next start (or sweep) handles them once
    restarted = Inbox(db, clock, handling)
    clock.at += ORPHANED_AFTER
    assert await restarted.recover() == 4
    await restarted.drain()
    assert sorted(handling.handled) == ["dup", "dup", "m1", "m2"]
    async with db.begin() as session:
        assert [e.event_id for e in await set_aside(session)] == ["garbled"]
