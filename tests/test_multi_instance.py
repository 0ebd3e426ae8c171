"""Two real `duban serve` processes on one PostgreSQL: both take traffic, one leads; the leader
is killed with SIGKILL in mid-month and the other takes over within 15 s, with no occurrence
run twice, no check-in recorded twice, and no message lost or shown twice.

PostgreSQL only (the property does not exist on SQLite, where one instance is all there is):
tests/conftest.py collects this module only when DUBAN_TEST_DATABASE_URL names a server.

The processes run on a drill clock (DUBAN_CLOCK_START, bot/drill.py) that starts on Monday
16 November 2026 at 08:59:35 and runs at real speed, with the configuration's schedules set
so that jobs fall due while the test runs: 提示 and 督查 at 8:59 (already due at start: the
first leader's catch-up runs them), 督办 and 调度 at 9:00 (the survivor's scheduler runs them;
on a machine too slow to kill the leader before 9:00, the kill waits until the first leader has
run and delivered them). The leader is killed when nothing is in flight, so "exactly once" is
exact; tests/test_delivery_kill.py covers a kill in mid-send. The fake platforms run on the same
shifted time, so callbacks are signed for that day.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.models import CheckIn, InboundSeen, JobRun, OutboxMessage
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, FakeWeCom
from tests.fakes.server import SentMessage
from tests.test_serve import env_for, free_port

START = datetime(2026, 11, 16, 8, 59, 35, tzinfo=SHANGHAI)  # a Monday
NINE = START.replace(minute=0, second=0, hour=9)
EIGHT_59 = START.replace(second=0)
UNITS = 10
GROUP = "cidC1=="
ADMIN = "staff_admin"
TAKEOVER_LIMIT = 15.0


def drill_config() -> dict[str, Any]:
    data = mini()
    data["committee"]["admins"] = ["p_admin"]
    for group in data["groups"]:
        group["channel"]["rate_per_minute"] = 600  # real time: let the fakes go fast
    data["people"] = [{"id": "p_admin", "name": "王工委", "wecom": "wanggw", "dingtalk": ADMIN}]
    data["units"] = []
    for i in range(1, UNITS + 1):
        data["people"].append({"id": f"p_{i}", "name": f"联络员{i:02d}", "dingtalk": f"staff_{i}"})
        data["units"].append(
            {"id": f"u{i}", "name": f"第{i}局机关党委", "short": f"第{i}局", "liaisons": [f"p_{i}"]}
        )
    data["communities"][0].update(lead="u1", members=[f"u{i}" for i in range(1, UNITS + 1)])
    task = data["tasks"][0]  # 主题党日, due on the 25th: what the liaisons report
    data["tasks"] = [
        task,
        {**task, "id": "T04", "title": "理论学习", "due": "每月10日前"},  # overdue: 督办
        {**task, "id": "T05", "title": "党费收缴", "due": "每月18日前"},  # due soon: 提示
    ]
    data["schedules"] = {
        "remind": "工作日 8:59",
        "inspect": "工作日 8:59",
        "supervise": "工作日 9:00",
        "dispatch": "每周一 9:00",
    }
    return data


@dataclass
class Server:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, name: str, env: dict[str, str]) -> Server:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            env={**env, "DUBAN_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        server = cls(name, port, proc)
        server._reader = asyncio.create_task(server._read())
        return server

    async def _read(self) -> None:  # drained all along: a full pipe would block the server
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return "\n".join(self.log)

    async def ready(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with http.get(f"{self.url}/readyz") as r:
                body: dict[str, Any] = await r.json()
                return body
        except aiohttp.ClientError:
            return None

    async def ended(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), 30)
        if self._reader is not None:
            await self._reader
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def until(what: str, seconds: float, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


class Drill:
    """Two servers, the fake platforms they talk to, and the database they share, read by
    the test as an operator would."""

    def __init__(self, database_url: str, dingtalk: FakeDingTalk, wecom: FakeWeCom) -> None:
        self.db = Database(database_url)
        self.dingtalk, self.wecom = dingtalk, wecom
        self.servers: list[Server] = []
        self.http = aiohttp.ClientSession()
        self._ids = itertools.count(1)

    async def close(self) -> None:
        for server in self.servers:
            server.kill()
        await asyncio.gather(*(s.ended() for s in self.servers), return_exceptions=True)
        await self.http.close()
        await self.db.dispose()

    # -- traffic -------------------------------------------------------------------------------

    async def say(self, to: Server, staff: str, text: str, *, also: Server | None = None) -> None:
        """A private message to the bot; ``also``: the platform retries the callback and the
        load balancer hands the retry to the other instance."""
        body = self.dingtalk.bot_message(text, staff, staff, f"m{next(self._ids)}", "1")
        headers = self.dingtalk.callback_headers()

        async def post(server: Server) -> None:
            async with self.http.post(f"{server.url}/hooks/dingtalk", json=body, headers=headers):
                pass

        await asyncio.gather(*(post(s) for s in (to, also) if s is not None))

    async def check_in(self, unit: int, to: Server, *, also: Server | None = None) -> None:
        # Instances are numbered by deadline: 3 is 主题党日, due on the 25th.
        await self.say(to, f"staff_{unit}", "打卡 3 已开展主题党日", also=also)

    # -- what the servers say ------------------------------------------------------------------

    async def leaders(self) -> dict[str, bool]:
        """Whether each server that answers leads."""
        found = {}
        for server in self.servers:
            if (state := await server.ready(self.http)) is not None:
                found[server.name] = bool(state["leader"])
        return found

    # -- what the database says ----------------------------------------------------------------

    async def scalar(self, stmt: Any) -> Any:
        async with self.db.begin() as s:
            return await s.scalar(stmt)

    async def rows(self, stmt: Any) -> list[Any]:
        async with self.db.begin() as s:
            return list((await s.execute(stmt)).all())

    async def count(self, model: Any) -> int:
        return int(await self.scalar(select(func.count()).select_from(model)))

    async def runs(self) -> list[tuple[str, datetime]]:
        rows = await self.rows(select(JobRun.job, JobRun.occurrence).order_by(JobRun.id))
        return [(job, at.astimezone(SHANGHAI)) for job, at in rows]

    async def heads(self) -> int:
        """Rows sent on their own or carrying others coalesced: one platform message each."""
        stmt = select(func.count()).where(OutboxMessage.merged_into.is_(None))
        return int(await self.scalar(stmt))

    def shown(self) -> list[SentMessage]:
        return self.dingtalk.sent + self.wecom.sent

    def settled(self, checkins: int, runs: int) -> Callable[[], Awaitable[bool]]:
        """Everything recorded, and every outbox row shown on a platform."""

        async def check() -> bool:
            if await self.count(CheckIn) < checkins or len(await self.runs()) < runs:
                return False
            live = OutboxMessage.status.in_(("pending", "sending"))
            if await self.scalar(select(func.count()).where(live)):
                return False
            return len(self.shown()) == await self.heads()

        return check

    async def explain(self) -> str:
        """What the test saw, for a failure's message."""
        outbox = await self.rows(select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.status))
        lines = [f"runs: {await self.runs()}", f"outbox: {outbox}"]
        lines += [f"shown: {m.target} {m.text!r}" for m in self.shown()]
        for server in self.servers:
            lines += [f"--- {server.name} ---", *server.log[-80:]]
        return "\n".join(lines)


@pytest.fixture
async def drill(database_url: str, aiohttp_server: Any) -> AsyncIterator[Drill]:
    shift = (START - datetime.now(SHANGHAI)).total_seconds()  # the fakes' time is the drill's
    dingtalk = FakeDingTalk(clock=lambda: time.time() + shift, rate_limit=600)
    await dingtalk.start(aiohttp_server)
    dingtalk.add_group(GROUP)
    wecom = FakeWeCom(clock=lambda: time.time() + shift, rate_limit=600)
    await wecom.start(aiohttp_server)
    wecom.add_robot(ENV["T_WEBHOOK_ADMINS"])
    found = Drill(database_url, dingtalk, wecom)
    try:
        yield found
    finally:
        await found.close()


async def test_the_leader_dies_mid_month_and_the_other_takes_over(
    drill: Drill, database_url: str, tmp_path: Path
) -> None:
    env = env_for(
        database_url,
        write(tmp_path / "conf", drill_config()),
        DUBAN_CLOCK_START=START.isoformat(),
        DUBAN_DINGTALK_APP_KEY=drill.dingtalk.app_key,
        DUBAN_DINGTALK_APP_SECRET=drill.dingtalk.app_secret,
        DUBAN_DINGTALK_API_BASE=drill.dingtalk.base_url,
        DUBAN_DINGTALK_OAPI_BASE=drill.dingtalk.base_url,
        DUBAN_WECOM_API_BASE=drill.wecom.base_url,
    )
    # Started together, as a deployment starts them: they take turns at migrating.
    drill.servers = list(await asyncio.gather(Server.start("a", env), Server.start("b", env)))
    try:
        takeover = await run_the_drill(drill)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{await drill.explain()}") from None
    second = drill.servers[1]  # the survivor

    assert takeover <= TAKEOVER_LIMIT, f"takeover took {takeover:.1f} s"
    # No occurrence ran twice: the survivor's catch-up found the 8:59 runs done.
    runs = await drill.runs()
    assert len(set(runs)) == len(runs) == 5, runs
    assert Counter(job for job, _ in runs) == {
        "remind": 1,
        "inspect": 1,
        "supervise": 1,
        "dispatch": 2,  # by hand on the follower, and at 9:00
    }
    assert "missed its 2026-11-16T08:59:00+08:00 run" not in second.text()
    # Every check-in recorded once, whichever instance got it and however often.
    reporters = await drill.rows(select(CheckIn.reporter_id))
    assert len(set(reporters)) == len(reporters) == UNITS
    assert await drill.count(InboundSeen) == UNITS + 1  # and the admin's command
    # Every message shown exactly once: none missing, none twice.
    assert {s for (s,) in await drill.rows(select(OutboxMessage.status))} == {"sent"}
    shown = [(m.target, json.dumps(m.payload, sort_keys=True)) for m in drill.shown()]
    assert len(shown) == await drill.heads()
    assert [m for m, n in Counter(shown).items() if n > 1] == []
    texts = [m.text or "" for m in drill.shown()]
    assert sum(t.startswith("已记录：**3** 主题党日") for t in texts) == UNITS
    assert sum(t.startswith("已开始执行 **调度**") for t in texts) == 1
    for server in drill.servers:
        assert "Traceback" not in server.text(), server.text()
    assert "leadership gained" in second.text()


async def run_the_drill(drill: Drill) -> float:
    """The drill's steps; the seconds from the kill until the survivor led."""
    await until("both servers to serve", 60, lambda: _all_up(drill))
    states = await drill.leaders()
    assert sorted(states.values()) == [False, True], states  # exactly one leads
    drill.servers.sort(key=lambda s: not states[s.name])
    first, second = drill.servers

    async def early_runs() -> bool:  # the first leader's catch-up: what fell due at 8:59
        return {("remind", EIGHT_59), ("inspect", EIGHT_59)} <= set(await drill.runs())

    await until("the 8:59 jobs", 30, early_runs)
    # Traffic to both; four callbacks arrive twice, once at each instance.
    for unit in range(1, 7):
        to, other = (first, second) if unit % 2 else (second, first)
        await drill.check_in(unit, to, also=other if unit <= 4 else None)
    await drill.say(second, ADMIN, "日程立即执行 调度")  # the follower runs the job itself
    said = time.monotonic()
    await until("the first traffic delivered", 30, drill.settled(6, 3))
    # A job falling due in the next instant would have messages in flight: wait past it.
    seen = (await drill.scalar(select(func.max(InboundSeen.seen_at)))).astimezone(SHANGHAI)
    now = seen + timedelta(seconds=time.monotonic() - said + 0.5)  # the servers' time, about
    if now >= NINE - timedelta(seconds=3):  # a slow start: the first leader runs them all
        await until("the 9:00 jobs delivered", 30, drill.settled(6, 5))

    first.kill()  # SIGKILL: no shutdown, no goodbye to the database
    killed = time.monotonic()
    await first.ended()
    for unit in range(7, UNITS + 1):  # while nobody leads: queued, not lost
        await drill.check_in(unit, second)

    async def took_over() -> bool:
        return (await drill.leaders()).get(second.name, False)

    await until("the takeover", 30, took_over)
    takeover = time.monotonic() - killed
    print(f"takeover after SIGKILL: {takeover:.2f} s")

    async def nine_runs() -> bool:
        return {("supervise", NINE), ("dispatch", NINE)} <= set(await drill.runs())

    await until("the 9:00 jobs", 60, nine_runs)
    await until("everything delivered", 30, drill.settled(UNITS, 5))
    second.proc.send_signal(signal.SIGTERM)
    assert await second.ended() == 0, second.text()
    return takeover


async def _all_up(drill: Drill) -> bool:
    for server in drill.servers:
        if server.proc.returncode is not None:
            raise AssertionError(f"{server.name} exited:\n{server.text()}")
    return len(await drill.leaders()) == len(drill.servers)
