"""The app mounts each platform from its settings alone, and runs Stream mode as a service."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from bot.app import DEPS, READY_WITHIN, YOUNG_GENERATION, create_app
from bot.clock import FixedClock
from bot.deployment import load
from bot.messages import Inbound
from bot.models.org import Person
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, ManualClock


async def test_stream_mode_delivers_through_the_app(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    fake = FakeDingTalk(clock=ManualClock(clock.now().timestamp()))
    await fake.start(aiohttp_server)
    received: list[Inbound] = []

    async def dispatch(msg: Inbound) -> None:
        received.append(msg)

    settings = Settings(
        database_url=database_url,
        config=tmp_path,
        scheduler_enabled=False,
        dingtalk_mode="stream",
        dingtalk_app_key=fake.app_key,
        dingtalk_app_secret=SecretStr(fake.app_secret),
        dingtalk_api_base=fake.base_url,
    )
    deployment = load(write(tmp_path, mini()), env=ENV)
    client = await aiohttp_client(create_app(settings, clock, deployment, dispatch))
    deps = client.app[DEPS]
    assert "dingtalk" not in deps.adapters  # stream only: no HTTP callback route
    assert deps.stream is not None
    async with asyncio.timeout(5):
        await deps.stream.connected.wait()
    ready = await client.get("/readyz")
    assert (await ready.json())["dingtalk_stream"] == "connected"
    payload = fake.bot_message("本月任务", "staff_a_ll", "cidC1==", "msg-stream-1")
    ack = await fake.stream_push_bot_message(payload)
    assert ack["code"] == 200
    await deps.inbox.drain()
    assert [(m.text, m.sender_id, m.source) for m in received] == [
        ("本月任务", "staff_a_ll", "dingtalk_stream")
    ]
    await client.close()  # the lifespan stops the stream client; teardown must not hang


async def test_only_configured_platforms_are_mounted(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    settings = Settings(
        database_url=database_url,
        config=tmp_path,
        scheduler_enabled=False,
        dingtalk_app_secret=SecretStr("s"),
        dingtalk_mode="both",
    )
    client = await aiohttp_client(
        create_app(settings, clock, load(write(tmp_path, mini()), env=ENV))
    )
    assert set(client.app[DEPS].adapters) == {"dingtalk"}
    resp = await client.post("/hooks/wecom", data=b"<xml/>")
    assert resp.status == 404


async def test_callback_is_answered_before_the_work_is_done(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    fake = FakeDingTalk(clock=ManualClock(clock.now().timestamp()))
    await fake.start(aiohttp_server)
    release = asyncio.Event()
    finished: list[str] = []

    async def slow_dispatch(msg: Inbound) -> None:
        await release.wait()  # stands for any amount of slow work
        finished.append(msg.event_id)

    settings = Settings(
        database_url=database_url,
        config=tmp_path,
        scheduler_enabled=False,
        dingtalk_app_secret=SecretStr(fake.app_secret),
    )
    app = create_app(settings, clock, load(write(tmp_path, mini()), env=ENV), slow_dispatch)
    client = await aiohttp_client(app)
    headers, body = fake.signed_callback("打卡 1 已完成", "staff_a_ll", "cidC1==", "msg-slow")
    async with asyncio.timeout(1):  # the platform's patience is 5 s; ours is far less
        resp = await client.post("/hooks/dingtalk", json=body, headers=headers)
    assert resp.status == 200
    assert finished == []  # answered while the work is still pending
    release.set()
    await client.app[DEPS].inbox.drain()
    assert finished == ["msg-slow"]


def console_settings(database_url: str, config: Path) -> Settings:
    """Everything on the local console, no scheduler."""
    return Settings(
        database_url=database_url,
        config=config,
        scheduler_enabled=False,
        console=True,
        delivery="console",
    )


async def test_console_is_a_platform_and_takes_every_delivery(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    from bot.console import ConsoleSender
    from bot.destinations import group_destination
    from bot.messages import Outbound

    received: list[Inbound] = []

    async def dispatch(msg: Inbound) -> None:
        received.append(msg)

    settings = console_settings(database_url, tmp_path)
    deployment = load(write(tmp_path, mini()), env={}, live=False)
    client = await aiohttp_client(create_app(settings, clock, deployment, dispatch))
    deps = client.app[DEPS]
    assert (await client.get("/console")).status == 200
    resp = await client.post(
        "/hooks/console", json={"person": "p_a_ll", "group": "g_c1", "text": "进度"}
    )
    assert resp.status == 200
    await deps.inbox.drain()
    assert [(m.platform, m.chat.chat_id, m.sender_id, m.text) for m in received] == [
        ("console", "g_c1", "p_a_ll", "进度")
    ]
    # A WeCom webhook group's post stays on the console, in the group it was meant for.
    admins = group_destination(deployment.spec.groups[0], deployment)
    await deps.senders.send(admins, Outbound("**督办提醒**", title="督办提醒"))
    console = deps.senders.by_channel["wecom_webhook"]
    assert isinstance(console, ConsoleSender)
    shown = [(e.kind, e.chat.chat_id, e.body) for e in console.feed.recent()]
    assert shown == [("inbound", "g_c1", "进度"), ("outbound", "g_admins", "**督办提醒**")]


async def test_the_server_lets_the_configuration_s_people_go_once_they_are_synced(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    async def dispatch(msg: Inbound) -> None:
        pass

    settings = console_settings(database_url, tmp_path)
    full = load(write(tmp_path, mini()), env={}, live=False)
    people = {p.id: p.name for p in full.spec.people}
    handed = weakref.ref(full)
    app = create_app(settings, clock, full, dispatch)
    del full
    assert handed() is not None  # start-up has yet to sync them
    client = await aiohttp_client(app)
    gc.collect()
    assert handed() is None
    deps = client.app[DEPS]
    assert len(deps.deployment.spec.units) == 2
    with pytest.raises(RuntimeError, match="read them from the database"):
        [p.id for p in deps.deployment.spec.people]  # never an empty list, quietly
    async with deps.db.begin() as s:
        rows = await s.execute(select(Person.key, Person.name))
        synced = {key: name for key, name in rows}
    assert synced == people
    # The console still knows everyone, by the roster it packed before they went.
    known = await client.post(
        "/hooks/console", json={"person": "p_b_ll", "group": "g_c1", "text": "进度"}
    )
    assert known.status == 200
    unknown = await client.post("/hooks/console", json={"person": "p_nobody", "text": "进度"})
    assert unknown.status == 400
    directory = await (await client.get("/console/api/directory")).json()
    assert [(p["id"], p["name"]) for p in directory["people"]] == list(people.items())


async def test_what_start_up_built_is_kept_out_of_the_collectors_way(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    settings = Settings(database_url=database_url, config=tmp_path, scheduler_enabled=False)
    loaded = load(write(tmp_path, mini()), env=ENV)
    before = gc.get_threshold()
    client = await aiohttp_client(create_app(settings, clock, loaded))
    # The configuration is among the objects a full collection no longer walks.
    assert gc.get_freeze_count() > 0
    kept = client.app[DEPS].deployment
    assert not any(o is kept for o in gc.get_objects())
    # And the youngest generation is collected less often while serving.
    assert gc.get_threshold() == (YOUNG_GENERATION, *before[1:])
    assert before[0] < YOUNG_GENERATION
    await client.close()
    assert gc.get_freeze_count() == 0  # and collectable again once the app is gone
    assert gc.get_threshold() == before


async def test_ready_while_a_job_holds_the_writer(
    aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    settings = Settings(database_url=database_url, config=tmp_path, scheduler_enabled=False)
    deployment = load(write(tmp_path, mini()), env=ENV)

    async def dispatch(msg: Inbound) -> None:
        pass

    client = await aiohttp_client(create_app(settings, clock, deployment, dispatch))
    db = client.app[DEPS].db
    # A long job's transaction: on SQLite the one writer connection is taken until it ends.
    async with db.begin() as s:
        await s.execute(text("UPDATE units SET active = active"))
        async with asyncio.timeout(READY_WITHIN + 1):
            ready = await client.get("/readyz")
        body = await ready.json()
    assert ready.status == 200 and body["checks"]["database"] and body["checks"]["schema"]
    await client.close()
