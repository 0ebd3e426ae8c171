"""Queuing a message: in the caller's transaction, once per deduplication key, no secrets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import Loaded, load
from bot.messages import ChatRef, Inbound, Mention, Outbound, ReplyRoute
from bot.models import OutboxMessage
from bot.outbox import (
    Target,
    enqueue,
    group_target,
    message_from_json,
    message_to_json,
    reply_target,
    row_target,
)
from tests.configs import ENV, mini, write

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def deployment(tmp_path: Path) -> Loaded:
    return load(write(tmp_path / "conf", mini()), env=ENV)


def admins(deployment: Loaded) -> Target:
    return group_target(deployment.spec.groups[0])


async def count(db: Database) -> int:
    async with db.begin() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def test_a_rolled_back_transaction_queues_nothing(
    db: Database, deployment: Loaded, clock: FixedClock
) -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused):
        async with db.begin() as session:
            await enqueue(
                session,
                Outbound("打卡成功"),
                to=admins(deployment),
                kind="reply",
                dedupe_key="reply:evt-1",
                now=clock.now(),
            )
            raise Refused  # the handler's change failed after the reply was queued
    assert await count(db) == 0


async def test_the_same_key_twice_is_one_message(
    db: Database, deployment: Loaded, clock: FixedClock
) -> None:
    results = []
    for body in ("第一次", "第二次"):
        async with db.begin() as session:
            results.append(
                await enqueue(
                    session,
                    Outbound(body),
                    to=admins(deployment),
                    kind="remind",
                    dedupe_key="remind:2026-11-02:g_admins",
                    now=clock.now(),
                )
            )
    assert results == [True, False]
    async with db.begin() as session:
        [row] = (await session.scalars(select(OutboxMessage))).all()
    assert message_from_json(row.body).body == "第一次"
    assert (row.status, row.platform, row.chat_id, row.channel) == (
        "pending",
        "wecom",
        "wrkADMINS",
        "g_admins",
    )
    assert row.next_attempt_at == clock.now()
    # The group's webhook key stays in the environment: the row names the group only.
    assert ENV["T_WEBHOOK_ADMINS"] not in repr(
        {c.name: getattr(row, c.name) for c in OutboxMessage.__table__.columns}
    )


def test_a_message_survives_the_round_trip_through_json() -> None:
    message = Outbound(
        "## 逾期提醒\n- 甲局",
        format="text",
        title="逾期",
        mentions=(Mention("张三", user_id="zhangsan"), Mention("李四", mobile="13800000000")),
        image=PNG,
    )
    assert message_from_json(message_to_json(message)) == message
    assert message_from_json({"body": "只有正文"}) == Outbound("只有正文")
    for broken in ({}, {"body": "x", "format": "html"}, {"body": "x", "image": "!!"}):
        with pytest.raises(ValueError, match=r"not a stored message|unknown format"):
            message_from_json(broken)


def replies(deployment: Loaded, clock: FixedClock) -> Callable[..., Target]:
    def target(chat: ChatRef, *, source: str, route: ReplyRoute | None = None) -> Target:
        msg = Inbound(
            platform=chat.platform,
            event_id="evt",
            chat=chat,
            sender_id="staff_a_ll",
            sender_name="甲联络员",
            text="进度",
            received_at=clock.now(),
            source=source,
            reply_route=route,
        )
        return reply_target(msg, deployment)

    return target


def test_replies_are_routed_as_reply_destination_would_route_them(
    deployment: Loaded, clock: FixedClock
) -> None:
    reply_to = replies(deployment, clock)
    expires = clock.now() + timedelta(minutes=90)
    route = ReplyRoute("dingtalk_session", "https://oapi.example/session?x=secret", expires)
    group = ChatRef("dingtalk", "cidC1==", is_group=True)
    via_route = reply_to(group, source="dingtalk_http", route=route)
    assert (via_route.channel_type, via_route.url, via_route.expires_at) == (
        "dingtalk_session",
        route.url,
        expires,
    )
    assert "secret" not in repr(via_route)
    configured = reply_to(group, source="dingtalk_stream")
    assert configured == group_target(deployment.spec.groups[1])
    other = ChatRef("dingtalk", "cidOTHER==", is_group=True)
    assert reply_to(other, source="dingtalk_http").channel_type == "dingtalk_openapi"
    one = ChatRef("dingtalk", "staff_a_ll", is_group=False)
    direct = reply_to(one, source="dingtalk_http")
    assert (direct.channel_type, direct.chat_id, direct.is_group) == (
        "dingtalk_user",
        "staff_a_ll",
        False,
    )
    bot_chat = ChatRef("wecom", "wanggw", is_group=False)
    assert reply_to(bot_chat, source="wecom_aibot").channel_type == "wecom_aibot"
    assert reply_to(bot_chat, source="wecom_app").channel_type == "wecom_app_user"
    console = ChatRef("console", "g_c1", is_group=True)
    assert reply_to(console, source="console").channel_type == "console"


async def test_a_stored_route_reads_back_as_queued(db: Database, clock: FixedClock) -> None:
    target = Target(
        "dingtalk",
        "cidC1==",
        channel_type="dingtalk_session",
        url="https://oapi.example/session?x=1",
        expires_at=clock.now() + timedelta(minutes=5),
    )
    async with db.begin() as session:
        await enqueue(
            session, Outbound("收到"), to=target, kind="reply", dedupe_key="r", now=clock.now()
        )
    async with db.begin() as session:
        [row] = (await session.scalars(select(OutboxMessage))).all()
    assert row_target(row) == target and row.channel == "dingtalk_session"
