"""The delivery worker against the fake platforms over real HTTP: rate limits, order,
fairness, coalescing, faults and retries, dead messages and alerts, reply routes, restarts.

Time is the shared FixedClock (the fakes read it too); ``worker.flush()`` is the step, and
tests move the clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DBAPIError

from bot import schema
from bot.adapters.wecom_send import WeComWebhookSender
from bot.clock import FixedClock
from bot.db import Database
from bot.delivery import Backoff, DeliveryWorker, queue_status, retry_dead
from bot.delivery.limits import RollingLimiter
from bot.deployment import Loaded, load
from bot.messages import ChatRef, Inbound, Mention, Outbound, ReplyRoute
from bot.metrics import Metrics
from bot.models import OutboxMessage
from bot.outbox import Target, enqueue, group_target, reply_target
from bot.senders import build_senders
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, FakeWeCom
from tests.test_split import chinese_report
from tests.waiting import until

ADMINS = ENV["T_WEBHOOK_ADMINS"]
SECRETS = {
    **ENV,
    "T_KEY_A": "robot-key-a-7f3a9c",
    "T_KEY_B": "robot-key-b-1d2e4f",
    "T_KEY_GONE": "robot-key-gone-0b9d",
    "T_DT_TOKEN": "dt-robot-token-5c6d",
    "T_DT_SECRET": "SECdt-robot-secret-8e7f",
}
KEY_A, KEY_B, DT_TOKEN = SECRETS["T_KEY_A"], SECRETS["T_KEY_B"], SECRETS["T_DT_TOKEN"]
WEBHOOK = "/cgi-bin/webhook/send"


def robot(gid: str, name: str, chat: str, env: str) -> dict[str, Any]:
    channel = {"type": "wecom_webhook", "key": {"env": env}}
    return {"id": gid, "name": name, "platform": "wecom", "chat_id": chat, "channel": channel}


def config() -> dict[str, Any]:
    data = mini()
    data["groups"] += [
        robot("g_a", "甲群", "wrkA", "T_KEY_A"),
        robot("g_b", "乙群", "wrkB", "T_KEY_B"),
        robot("g_gone", "已解散的群", "wrkGONE", "T_KEY_GONE"),
        {
            "id": "g_dt",
            "name": "钉钉群",
            "platform": "dingtalk",
            "chat_id": "cidDT==",
            "channel": {
                "type": "dingtalk_webhook",
                "access_token": {"env": "T_DT_TOKEN"},
                "secret": {"env": "T_DT_SECRET"},
            },
        },
    ]
    return data


@dataclass
class Rig:
    db: Database
    wecom: FakeWeCom
    dingtalk: FakeDingTalk
    clock: FixedClock
    deployment: Loaded
    worker: DeliveryWorker
    metrics: Metrics

    def advance(self, seconds: float) -> None:
        self.clock.at += timedelta(seconds=seconds)

    def target(self, gid: str) -> Target:
        return group_target(next(g for g in self.deployment.spec.groups if g.id == gid))

    async def queue(
        self,
        to: str | Target,
        body: str,
        *,
        key: str | None = None,
        kind: str = "notice",
        coalesce: bool = False,
        mentions: tuple[Mention, ...] = (),
    ) -> bool:
        target = self.target(to) if isinstance(to, str) else to
        async with self.db.begin() as session:
            queued = await enqueue(
                session,
                Outbound(body, mentions=mentions),
                to=target,
                kind=kind,
                dedupe_key=key or f"test:{body}",
                now=self.clock.now(),
                coalesce=coalesce,
            )
        self.worker.nudge()
        return queued

    async def rows(self) -> list[OutboxMessage]:
        async with self.db.begin() as session:
            return list((await session.scalars(select(OutboxMessage).order_by("id"))).all())

    async def drain(self, step: float = 400, rounds: int = 40) -> int:
        """Flush and move the clock past any backoff until nothing is left to send."""
        delivered = 0
        for _ in range(rounds):
            delivered += await self.worker.flush()
            if all(r.status in ("sent", "dead") for r in await self.rows()):
                return delivered
            self.advance(step)
        raise AssertionError("the outbox did not drain")


@asynccontextmanager
async def rigged(
    database_url: str,
    aiohttp_server: Any,
    tmp_path: Path,
    clock: FixedClock,
    *,
    send_timeout: float | None = None,
    data: dict[str, Any] | None = None,
) -> AsyncIterator[Rig]:
    epoch = lambda: clock.now().timestamp()  # noqa: E731
    wecom, dingtalk = FakeWeCom(clock=epoch), FakeDingTalk(clock=epoch)
    await wecom.start(aiohttp_server)
    await dingtalk.start(aiohttp_server)
    for key in (ADMINS, KEY_A, KEY_B):
        wecom.add_robot(key)
    dingtalk.add_group("cidC1==")
    dingtalk.add_robot(DT_TOKEN, secret=SECRETS["T_DT_SECRET"])
    deployment = load(write(tmp_path / "conf", data or config()), env=SECRETS)
    settings = Settings(
        wecom_api_base=wecom.base_url,
        dingtalk_api_base=dingtalk.base_url,
        dingtalk_oapi_base=dingtalk.base_url,
        dingtalk_app_key=dingtalk.app_key,
        dingtalk_app_secret=SecretStr(dingtalk.app_secret),
    )
    db = Database(database_url)
    await schema.upgrade(db.engine)
    try:
        async with aiohttp.ClientSession() as http:
            senders = build_senders(settings, http, clock)
            if send_timeout is not None:  # build_senders has no timeout of its own (yet)
                senders.by_channel["wecom_webhook"] = WeComWebhookSender(
                    http, api_base=wecom.base_url, clock=clock, timeout=send_timeout
                )
            metrics = Metrics()
            worker = DeliveryWorker(
                db, senders, deployment, clock, metrics=metrics, rng=random.Random(6)
            )
            yield Rig(db, wecom, dingtalk, clock, deployment, worker, metrics)
    finally:
        await db.dispose()


@pytest.fixture
async def rig(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[Rig]:
    async with rigged(database_url, aiohttp_server, tmp_path, clock) as r:
        yield r


def webhook_calls(fake: FakeWeCom, key: str) -> list[Any]:
    return [c for c in fake.calls if c.path == WEBHOOK and c.query.get("key") == key]


def most_in_a_minute(times: list[float]) -> int:
    return max((sum(1 for u in times if t - 60 < u <= t) for t in times), default=0)


# --- the pieces --------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    backoff, rng = Backoff(base=2, cap=300, jitter=0.25), random.Random(1)
    for attempts in range(1, 12):
        plain = min(300, 2 * 2**attempts)
        assert plain <= backoff.delay(attempts, rng).total_seconds() <= plain * 1.25


def test_the_window_frees_a_request_sixty_seconds_after_it(clock: FixedClock) -> None:
    limiter, t0 = RollingLimiter(), clock.now()
    assert all(limiter.take("robot", 3, 1, t0) for _ in range(3))
    assert not limiter.take("robot", 3, 1, t0 + timedelta(seconds=59))
    assert limiter.free_at("robot", 3, 2, t0 + timedelta(seconds=59)) == t0 + timedelta(seconds=60)
    assert limiter.take("robot", 3, 1, t0 + timedelta(seconds=60))
    assert limiter.take("big", 3, 10, t0)  # costs more than the limit: goes once it is empty
    assert not limiter.take("big", 3, 1, t0)


# --- rate limits and order --------------------------------------------------------------


async def test_45_reminders_stay_within_20_a_minute_and_arrive_in_order(rig: Rig) -> None:
    expected = [f"**甲局**：请于本周五前提交主题党日材料（第 {i:02d} 条）" for i in range(45)]
    for body in expected:
        await rig.queue("g_admins", body)
    sent_per_flush = []
    for _ in range(6):
        sent_per_flush.append(await rig.worker.flush())
        rig.advance(30)
    assert sent_per_flush == [20, 0, 20, 0, 5, 0]
    assert rig.wecom.texts(ADMINS) == expected
    calls = webhook_calls(rig.wecom, ADMINS)
    assert len(calls) == 45  # not one refused and sent again
    assert most_in_a_minute([c.at for c in calls]) == 20
    assert all(c.response["errcode"] == 0 for c in calls)


async def test_coalescing_spends_far_fewer_posts_and_keeps_every_word(rig: Rig) -> None:
    lines = [
        f"- **第{i + 1}社区党支部**：“三会一课”本月尚缺 {i % 3 + 1} 次，"
        "请于 11 月 25 日前补齐并上传会议记录"
        for i in range(45)
    ]
    for i, line in enumerate(lines):
        await rig.queue("g_admins", line, key=f"remind:{i}", kind="remind", coalesce=True)
    await rig.queue("g_admins", "今日督办到此结束", key="closing")
    assert await rig.worker.flush() == 46
    posts = rig.wecom.texts(ADMINS)
    assert 2 <= len(posts) - 1 <= 5  # the reminders in a few posts, then the closing line
    assert "\n\n".join(posts[:-1]) == "\n\n".join(lines)
    assert posts[-1] == "今日督办到此结束"
    assert all(len(p.encode()) <= 4096 for p in posts)
    assert {r.status for r in await rig.rows()} == {"sent"}


async def test_coalesced_mentions_are_merged_once(rig: Rig) -> None:
    zhang, li = Mention("张三", user_id="zhangsan"), Mention("李四", user_id="lisi")
    await rig.queue("g_a", "甲局未打卡", kind="remind", coalesce=True, mentions=(zhang,))
    await rig.queue("g_a", "乙局未打卡", kind="remind", coalesce=True, mentions=(zhang, li))
    await rig.queue("g_a", "丙局未打卡", kind="overdue", coalesce=True, mentions=(li,))
    assert await rig.worker.flush() == 3  # the first two together, then the third
    merged, note, alone, note2 = rig.wecom.sent_to(KEY_A)
    assert merged.text == "甲局未打卡\n\n乙局未打卡"
    assert note.payload["text"]["mentioned_list"] == ["zhangsan", "lisi"]
    assert alone.text == "丙局未打卡" and note2.payload["text"]["mentioned_list"] == ["lisi"]


async def test_a_coalesced_post_keeps_its_members_through_retries_and_death(rig: Rig) -> None:
    for unit in ("甲局", "乙局", "丙局"):
        await rig.queue("g_a", f"{unit}未打卡", kind="remind", coalesce=True)
    rig.wecom.fail_next(1, status=500, path=WEBHOOK)
    assert await rig.worker.flush() == 0
    assert [r.status for r in await rig.rows()] == ["pending", "merged", "merged"]
    await rig.queue("g_a", "丁局未打卡", kind="remind", coalesce=True)  # too late to join
    rig.advance(400)
    assert await rig.worker.flush() == 4
    assert rig.wecom.texts(KEY_A) == ["甲局未打卡\n\n乙局未打卡\n\n丙局未打卡", "丁局未打卡"]

    gone = rig.target("g_gone")
    for unit in ("戊局", "己局"):
        await rig.queue(gone, f"{unit}未打卡", kind="remind", coalesce=True)
    await rig.worker.flush()
    head, follower = (await rig.rows())[-3:-1]  # the alert came last
    assert (head.status, follower.status, follower.merged_into) == ("dead", "dead", head.id)
    rig.wecom.add_robot(SECRETS["T_KEY_GONE"])
    async with rig.db.begin() as session:
        assert await retry_dead(session, follower.id, rig.clock.now()) == 2
    assert await rig.worker.flush() == 2
    assert rig.wecom.texts(SECRETS["T_KEY_GONE"]) == ["戊局未打卡\n\n己局未打卡"]


async def test_a_burst_to_one_group_never_delays_another(rig: Rig) -> None:
    for i in range(60):
        await rig.queue("g_a", f"甲群消息 {i}")
    await rig.queue("g_b", "乙群唯一的消息")
    assert await rig.worker.flush() == 21
    assert rig.wecom.texts(KEY_B) == ["乙群唯一的消息"]
    first_two = [c.query.get("key") for c in rig.wecom.calls[:2]]
    assert KEY_B in first_two  # served in the first round, not after A's twenty


# --- faults -----------------------------------------------------------------------------


async def test_faults_of_every_kind_end_in_exactly_once_in_order(rig: Rig) -> None:
    wecom, dingtalk = rig.wecom, rig.dingtalk
    wecom.fail_next(3, errcode=45009, path=WEBHOOK)
    wecom.fail_next(2, status=500, path=WEBHOOK)
    wecom.drop_next(2, path=WEBHOOK)
    wecom.delay_next(2, 0.05, path=WEBHOOK)  # slow, within the client's patience
    wecom.fail_next(1, status=503, path=WEBHOOK)
    dingtalk.fail_next(4, errcode=130101, path="/robot/send")
    dingtalk.drop_next(1, path="/robot/send")
    dingtalk.fail_next(2, status=502, path="/v1.0/robot/groupMessages/send")
    expected = {
        "g_admins": [f"工委通知 {i}" for i in range(8)],
        "g_dt": [f"钉钉通知 {i}" for i in range(8)],
        "g_c1": [f"共同体通知 {i}" for i in range(5)],
    }
    for i in range(8):  # interleaved, as real traffic would be
        for gid, bodies in expected.items():
            if i < len(bodies):
                await rig.queue(gid, bodies[i])
    assert await rig.drain() == 21
    assert wecom.texts(ADMINS) == expected["g_admins"]
    assert dingtalk.texts(DT_TOKEN) == expected["g_dt"]
    assert dingtalk.texts("cidC1==") == expected["g_c1"]
    rows = await rig.rows()
    assert sum(r.attempts for r in rows) == 3 + 2 + 2 + 1 + 4 + 1 + 2
    assert not wecom._faults and not dingtalk._faults


async def refuse_claims(db: Database, outbox_id: int | None) -> None:
    """A trigger in the real database that fails the claim (the UPDATE to ``sending``) of
    ``outbox_id``, as a dropped connection or a full disk would; None removes it."""
    async with db.begin() as session:
        if db.dialect == "postgresql":
            if outbox_id is None:
                await session.execute(text("DROP TRIGGER refuse_claim ON outbox"))
                return
            await session.execute(
                text(
                    "CREATE FUNCTION refuse_claim() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'the disk is full'; END $$ LANGUAGE plpgsql"
                )
            )
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_claim BEFORE UPDATE ON outbox FOR EACH ROW WHEN "
                    f"(NEW.status = 'sending' AND OLD.id = {outbox_id}) "
                    "EXECUTE FUNCTION refuse_claim()"
                )
            )
        elif outbox_id is None:
            await session.execute(text("DROP TRIGGER refuse_claim"))
        else:
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_claim BEFORE UPDATE ON outbox WHEN "
                    f"NEW.status = 'sending' AND OLD.id = {outbox_id} "
                    "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"
                )
            )


async def test_a_failed_claim_gives_its_robots_window_back(rig: Rig) -> None:
    for i in range(20):  # the robot's whole minute: 20 messages a minute
        await rig.queue("g_a", f"甲群消息 {i}")
    first = (await rig.rows())[0].id
    await refuse_claims(rig.db, first)
    with pytest.raises(DBAPIError):
        await rig.worker.flush()
    assert rig.worker.limiter.used("group:g_a", rig.clock.now()) == 0
    await refuse_claims(rig.db, None)
    # In the same minute: a charge kept for the rolled-back claim would hold the 20th back.
    assert await rig.worker.flush() == 20
    assert rig.wecom.texts(KEY_A) == [f"甲群消息 {i}" for i in range(20)]


async def test_a_claim_failing_part_way_sends_what_committed_and_loses_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.queue(Target("wecom", "wrkOLD", group_key="g_removed"), "旧群消息")  # dead
    await rig.queue("g_a", "甲群消息")
    await rig.queue("g_b", "乙群消息")
    dead, to_a, to_b = (r.id for r in await rig.rows())
    await refuse_claims(rig.db, to_b)
    rig.worker.concurrency = 2  # the dead head leaves room: B's is claimed in a second step
    with pytest.raises(DBAPIError):  # A's claim committed and A went; B's failed, twice
        await rig.worker.flush()
    assert "claiming failed part-way" in caplog.text
    assert rig.wecom.texts(KEY_A) == ["甲群消息"] and rig.wecom.texts(KEY_B) == []
    statuses = {r.id: r.status for r in await rig.rows()}
    assert (statuses[dead], statuses[to_a], statuses[to_b]) == ("dead", "sent", "pending")
    now = rig.clock.now()
    assert [rig.worker.limiter.used(f"group:{g}", now) for g in ("g_a", "g_b")] == [1, 0]
    await refuse_claims(rig.db, None)
    await rig.worker.flush()
    assert rig.wecom.texts(KEY_A) == ["甲群消息"] and rig.wecom.texts(KEY_B) == ["乙群消息"]
    assert {r.id: r.status for r in await rig.rows()}[to_b] == "sent"


async def test_a_split_message_failing_midway_resumes_without_repeating_a_part(rig: Rig) -> None:
    await rig.queue("g_admins", chinese_report(80), key="report")  # four parts at 4096 bytes
    await rig.queue("g_admins", "通报完毕", key="after")
    rig.wecom.delay_next(1, 0, path=WEBHOOK)  # part 1 goes through
    rig.wecom.fail_next(1, errcode=45009, path=WEBHOOK)  # part 2 is refused
    assert await rig.worker.flush() == 0
    [row, after] = await rig.rows()
    assert (row.status, row.sent_parts, row.attempts, after.status) == ("pending", 1, 1, "pending")
    rig.advance(400)
    rig.wecom.fail_next(1, status=500, path=WEBHOOK)  # and then part 2 again
    assert await rig.worker.flush() == 0
    assert await rig.drain() == 2
    parts = rig.wecom.texts(ADMINS)
    assert [p.rsplit("\n", 1)[-1] for p in parts] == [
        "（1/4）",
        "（2/4）",
        "（3/4）",
        "（4/4）",
        "通报完毕",
    ]


async def test_a_timed_out_send_is_retried_and_delivered_once(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    async with rigged(database_url, aiohttp_server, tmp_path, clock, send_timeout=0.2) as rig:
        for i in range(3):
            await rig.queue("g_admins", f"通知 {i}")
        rig.wecom.delay_next(1, 0.6, path=WEBHOOK)  # answers after the client gave up
        assert await rig.worker.flush() == 0
        assert (await rig.rows())[0].last_error == "wecom webhook: no answer within 0.2 s"
        assert await rig.drain() == 3
        [late, *_] = webhook_calls(rig.wecom, ADMINS)
    # The fake drops a request its client gave up on (a real platform may still show it:
    # the window the worker's docstring states).
    assert (late.fault, late.status) == ("delay", None)
    assert rig.wecom.texts(ADMINS) == ["通知 0", "通知 1", "通知 2"]


# --- dead messages and alerts -------------------------------------------------------------


async def test_permanent_errors_are_dead_and_alert_the_admins_once_an_hour(rig: Rig) -> None:
    for i in range(3):
        await rig.queue("g_gone", f"发往失效群 {i}")
    await rig.queue("g_a", "甲群照常")
    assert await rig.worker.flush() == 2  # 甲群's message and the one alert
    rows = await rig.rows()
    assert [r.status for r in rows[:3]] == ["dead"] * 3
    assert all("93000" in (r.last_error or "") for r in rows[:3])
    assert not any(SECRETS["T_KEY_GONE"] in (r.last_error or "") for r in rows)
    [alert] = rig.wecom.texts(ADMINS)
    assert "已解散的群" in alert and f"投递 重试 {rows[0].id}" in alert
    rig.advance(3600)
    await rig.queue("g_gone", "一小时后又一条")
    await rig.worker.flush()
    assert len(rig.wecom.texts(ADMINS)) == 2  # the next hour's alert
    async with rig.db.begin() as session:
        status = await queue_status(session)
    assert [(c.channel, c.dead) for c in status.channels] == [("g_gone", 4)]
    newest = max(r.id for r in await rig.rows() if r.kind == "notice")
    assert status.dead_total == 4 and status.dead[0].id == newest

    rig.wecom.add_robot(SECRETS["T_KEY_GONE"])  # the admins fixed the robot
    async with rig.db.begin() as session:
        assert await retry_dead(session, rows[0].id, rig.clock.now()) == 1
        assert await retry_dead(session, rows[0].id, rig.clock.now()) == 0  # pending now
        assert await retry_dead(session, rows[3].id, rig.clock.now()) == 0  # never dead
        assert await retry_dead(session, 9999, rig.clock.now()) == 0
    assert await rig.worker.flush() == 1
    assert rig.wecom.texts(SECRETS["T_KEY_GONE"]) == ["发往失效群 0"]


async def test_a_broken_admins_group_does_not_alert_about_itself(
    database_url: str, aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    async with rigged(database_url, aiohttp_server, tmp_path, clock) as rig:
        rig.wecom.robots.discard(ADMINS)
        await rig.queue("g_admins", "发给工委群")
        await rig.queue("g_gone", "发往失效群")
        assert await rig.worker.flush() == 0
        rows = await rig.rows()
    assert [(r.kind, r.status) for r in rows] == [
        ("notice", "dead"),
        ("notice", "dead"),
        ("alert", "dead"),  # about g_gone; nothing about the admins' group or the alert
    ]


async def test_a_message_to_a_group_gone_from_the_configuration_is_dead(rig: Rig) -> None:
    gone = Target("wecom", "wrkOLD", group_key="g_removed")
    await rig.queue(gone, "旧群消息")
    await rig.queue(gone, "旧群消息二")
    assert await rig.worker.flush() == 1  # the alert
    rows = await rig.rows()
    assert [r.status for r in rows] == ["dead", "dead", "sent"]
    assert "not in the configuration" in (rows[0].last_error or "")


# --- reply routes -------------------------------------------------------------------------


def session_reply(url: str, expires_ms: int, clock: FixedClock) -> Inbound:
    """A DingTalk group message carrying its sessionWebhook, as the adapters parse it."""
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC)
    return Inbound(
        platform="dingtalk",
        event_id="msg-1",
        chat=ChatRef("dingtalk", "cidC1==", is_group=True),
        sender_id="staff_a_ll",
        sender_name="甲联络员",
        text="进度",
        received_at=clock.now(),
        source="dingtalk_http",
        reply_route=ReplyRoute("dingtalk_session", url, expires),
    )


async def test_a_reply_uses_its_route_while_valid_and_the_group_after(rig: Rig) -> None:
    url, expires_ms = rig.dingtalk.session_webhook("cidC1==", ttl=5400)
    to = reply_target(session_reply(url, expires_ms, rig.clock), rig.deployment)
    await rig.queue(to, "第一条回复")
    assert await rig.worker.flush() == 1
    rig.advance(5400)  # the sessionWebhook has expired
    await rig.queue(to, "第二条回复")
    assert await rig.worker.flush() == 1
    [first, second] = rig.dingtalk.sent_to("cidC1==")
    assert (first.endpoint, first.text) == ("sendBySession", "第一条回复")
    assert (second.endpoint, second.text) == ("groupMessages/send", "第二条回复")


async def test_a_route_the_platform_refuses_falls_back_to_the_group(rig: Rig) -> None:
    url, expires_ms = rig.dingtalk.session_webhook("cidC1==", ttl=30)
    msg = session_reply(url, expires_ms + 3_600_000, rig.clock)  # we think it lives longer
    rig.advance(60)
    await rig.queue(reply_target(msg, rig.deployment), "迟到的回复")
    assert await rig.worker.flush() == 1
    [reply] = rig.dingtalk.sent_to("cidC1==")
    assert (reply.endpoint, reply.text) == ("groupMessages/send", "迟到的回复")


# --- restarts and the worker's own loop --------------------------------------------------


async def test_rows_left_in_flight_are_recovered_by_owner_host_or_lease(rig: Rig) -> None:
    for i in range(4):
        await rig.queue(Target("wecom", f"wrk{i}", group_key="g_a"), f"恢复 {i}")
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    host = rig.worker.instance.rpartition(":")[0]
    owners = [rig.worker.instance, f"{host}:{gone.pid}", "elsewhere:1", f"{host}:1"]
    async with rig.db.begin() as session:
        for i, owner in enumerate(owners, start=1):
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == i)
                .values(status="sending", claimed_by=owner, claimed_at=rig.clock.now())
            )
    assert await rig.worker.recover() == 2  # this instance's, and a dead local process's
    assert await rig.worker.flush() == 2
    rig.advance(121)  # past the lease: another instance's claims are released
    assert await rig.worker.flush() == 2
    assert sorted(rig.wecom.texts(KEY_A)) == [f"恢复 {i}" for i in range(4)]


async def test_run_delivers_on_nudge_and_stop_leaves_the_rest_queued(rig: Rig) -> None:
    runner = asyncio.create_task(rig.worker.run())
    await rig.queue("g_a", "马上送达")
    await until(lambda: rig.wecom.texts(KEY_A) == ["马上送达"])
    rig.wecom.delay_next(1, 0.3, path=WEBHOOK)
    for i in range(3):
        await rig.queue("g_a", f"排队 {i}")
    await until(lambda: len(webhook_calls(rig.wecom, KEY_A)) == 2)
    await rig.worker.stop(5)  # the send in flight finishes; nothing new is claimed
    await asyncio.wait_for(runner, 1)
    assert [r.status for r in await rig.rows()] == ["sent", "sent", "pending", "pending"]
    assert rig.wecom.texts(KEY_A) == ["马上送达", "排队 0"]


async def test_while_callbacks_arrive_passes_are_spaced_and_then_catch_up(rig: Rig) -> None:
    # One lane a pass; while the inbox says callbacks are arriving, passes come at least
    # busy_pause apart, so replies wait a little instead of holding the database from them.
    arriving = [True]
    rig.worker.concurrency, rig.worker.busy_pause = 1, 0.4
    rig.worker.busy = lambda: arriving[0]
    for gid in ("g_a", "g_b", "g_admins"):
        await rig.queue(gid, f"回复 {gid}")
    loop, seen = asyncio.get_running_loop(), {}

    def sent(n: int) -> bool:
        seen.setdefault(len(rig.wecom.sent), loop.time())  # when each count was first seen
        return len(rig.wecom.sent) == n

    runner = asyncio.create_task(rig.worker.run())
    await until(lambda: sent(2))
    assert seen[2] - seen[1] >= 0.4 - 0.1  # less the polling's granularity
    arriving[0] = False  # the burst is over: the rest follows
    await until(lambda: sent(3))
    await rig.worker.stop(5)
    await asyncio.wait_for(runner, 1)
    assert [r.status for r in await rig.rows()] == ["sent", "sent", "sent"]


async def test_on_sqlite_the_look_reads_beside_the_writer(
    aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    """The look over the queue is the pass's slowest statement; on the writer's one
    connection it would hold every callback's acceptance up for as long."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lanes.db'}"
    async with rigged(url, aiohttp_server, tmp_path, clock) as rig:
        assert rig.db.readers is not rig.db.engine
        said: dict[str, list[str]] = {"writer": [], "reader": []}
        for name, engine in (("writer", rig.db.engine), ("reader", rig.db.readers)):
            event.listen(
                engine.sync_engine,
                "before_cursor_execute",
                lambda *a, name=name: said[name].append(" ".join(a[2].split())),
            )
        for gid in ("g_a", "g_b", "g_admins"):
            await rig.queue(gid, f"回复 {gid}")
        assert await rig.worker.flush() == 3
        looks = {k: [q for q in v if "lane_heads" in q] for k, v in said.items()}
        assert looks["writer"] == [] and len(looks["reader"]) >= 1
        assert any(q.startswith("UPDATE outbox SET status") for q in said["writer"])
        assert not any(q.startswith(("UPDATE", "INSERT", "DELETE")) for q in said["reader"])
        assert [r.status for r in await rig.rows()] == ["sent", "sent", "sent"]


async def test_two_instances_share_the_outbox_and_never_take_the_same_row(rig: Rig) -> None:
    """Two workers with their own connection pools, as two processes would have."""
    expected = {key: [f"{key[-6:]} 消息 {i}" for i in range(6)] for key in (ADMINS, KEY_A, KEY_B)}
    groups = {ADMINS: "g_admins", KEY_A: "g_a", KEY_B: "g_b"}
    for i in range(6):
        for key, bodies in expected.items():
            await rig.queue(groups[key], bodies[i])
    databases = [Database(rig.db.url) for _ in range(2)]
    workers = [
        DeliveryWorker(
            db,
            rig.worker.senders,
            rig.deployment,
            rig.clock,
            metrics=Metrics(),
            concurrency=1,  # one lane at a time each, so that both find work
            instance=f"host-{n}:1",
        )
        for n, db in enumerate(databases)
    ]
    try:
        for _ in range(40):
            if sum(await asyncio.gather(*(w.flush() for w in workers))) == 0:
                break
    finally:
        for db in databases:
            await db.dispose()
    for key, bodies in expected.items():
        assert rig.wecom.texts(key) == bodies
    assert {r.status for r in await rig.rows()} == {"sent"}
    sample = "duban_outbox_sent_total"
    shares = [
        sum(
            w.metrics.registry.get_sample_value(sample, {"channel": g}) or 0
            for g in groups.values()
        )
        for w in workers
    ]
    assert sum(shares) == 18
    if rig.db.dialect == "postgresql":
        # Both did part of the work. Only PostgreSQL queues lock waiters: two processes on one
        # SQLite file take turns by polling (the busy handler's sleeps), and one may empty the
        # queue before the other wakes. Several instances need PostgreSQL (README).
        assert min(shares) > 0


def test_a_refunded_take_frees_its_place() -> None:
    from datetime import datetime

    from bot.clock import SHANGHAI
    from bot.delivery.limits import RollingLimiter

    now = datetime(2026, 11, 2, 9, tzinfo=SHANGHAI)
    limiter = RollingLimiter()
    assert limiter.take("g", 2, 2, now)
    assert not limiter.take("g", 2, 1, now)
    limiter.refund("g", 2, 1, now)  # claimed by another worker after all
    assert limiter.used("g", now) == 1
    assert limiter.take("g", 2, 1, now)
