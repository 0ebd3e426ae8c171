"""The local console over real HTTP: the page, the directory, typing through /hooks/console into
the inbox, the bot's posts on the live stream, and refusing anyone who is not on this machine."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, make_mocked_request

from bot.adapters.base import Destination
from bot.clock import FixedClock
from bot.console import (
    ConsoleFeed,
    ConsoleSender,
    add_console_routes,
    showing_inbound,
    showing_inbound_many,
)
from bot.console.roster import Roster
from bot.console.routes import local_only
from bot.db import Database
from bot.deployment import Loaded, load
from bot.inbound import Inbox
from bot.messages import ChatRef, Inbound, Mention, Outbound
from bot.platforms import webhook_adapters
from bot.settings import Settings
from bot.web import ADAPTERS, INBOX, add_routes
from tests.configs import SAMPLE_CONFIG

TIMEOUT = 5  # seconds: every wait on the stream is bounded


@pytest.fixture(scope="module")
def deployment() -> Loaded:
    return load(SAMPLE_CONFIG, env={}, live=False)


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    feed: ConsoleFeed
    inbox: Inbox
    dispatched: list[Inbound]

    async def say(self, **body: Any) -> ClientResponse:
        return await self.client.post("/hooks/console", json=body)


MakeConsole = Callable[..., Awaitable[Console]]


@pytest.fixture
def make_console(aiohttp_client: Any, db: Database, clock: FixedClock, deployment: Loaded):
    """The console mounted on the generic webhook route, with a real inbox on a real database."""

    async def make(heartbeat: float = 15.0, host: str = "127.0.0.1") -> Console:
        feed = ConsoleFeed(clock)
        dispatched: list[Inbound] = []

        async def record(msg: Inbound) -> None:
            dispatched.append(msg)

        app = web.Application()
        add_routes(app)
        inbox = Inbox(db, clock, showing_inbound(feed, record))
        app[ADAPTERS] = {}  # the console has a route of its own
        app[INBOX] = inbox
        add_console_routes(
            app, feed, deployment, Roster(deployment.spec.people), heartbeat=heartbeat
        )
        client = await aiohttp_client(app, server_kwargs={"host": host})
        return Console(client, feed, inbox, dispatched)

    return make


@pytest.fixture
async def console(make_console: MakeConsole) -> Console:
    return await make_console()


async def read_event(resp: ClientResponse) -> dict[str, str]:
    """The next block of the event stream, as field → value (a comment under "comment")."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(TIMEOUT):
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")


async def next_message(resp: ClientResponse) -> tuple[str, dict[str, Any]]:
    while "data" not in (fields := await read_event(resp)):
        pass
    return fields["id"], json.loads(fields["data"])


def person(deployment: Loaded, person_id: str) -> Any:
    return next(p for p in deployment.spec.people if p.id == person_id)


async def test_the_page_is_served_with_nothing_from_outside(console: Console) -> None:
    resp = await console.client.get("/console")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "<title>督办 · 本地控制台</title>" in page
    assert "选择身份" in page and "选择群聊" in page
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert set(re.findall(r'(?:src|href)="([^"]*)"', page)) == {
        "/console/console.js",
        "/console/console.css",
    }
    for path, kind in (
        ("/console/console.js", "text/javascript"),
        ("/console/markdown.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ):
        asset = await console.client.get(path)
        assert asset.status == 200 and asset.content_type == kind
        text = await asset.text()
        assert not re.search(r"https?://|//cdn|@import", text)
        # Text only ever enters the page as text nodes.
        assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write|eval\(", text)


async def test_directory_lists_every_unit_s_people_with_roles_and_every_group(
    console: Console, deployment: Loaded
) -> None:
    resp = await console.client.get("/console/api/directory")
    assert resp.status == 200
    data = await resp.json()
    spec = deployment.spec
    people = {p["id"]: p for p in data["people"]}
    assert set(people) == {p.id for p in spec.people}
    admins = spec.committee.admins
    assert [p["id"] for p in data["people"][: len(admins)]] == admins  # admins first
    assert all("admin" in people[a]["roles"] for a in admins)
    for unit in spec.units:
        assert {"id": unit.id, "short": unit.short, "role": "secretary"} in people[
            str(unit.secretary)
        ]["units"]
        for liaison in unit.liaisons:
            assert "liaison" in people[liaison]["roles"]
            assert {"id": unit.id, "short": unit.short, "role": "liaison"} in people[liaison][
                "units"
            ]
    assert len({u["id"] for p in data["people"] for u in p["units"]}) == 58
    assert len(data["units"]) == 58
    assert people["p_czj_ll1"]["home_group"] == "g_c8"
    assert people["p_admin_wang"]["home_group"] == "g_admins"
    groups = {g["id"]: g for g in data["groups"]}
    assert len(groups) == 9
    assert groups["g_c8"] == {
        "id": "g_c8",
        "name": "第八党建共同体工作群",
        "platform": "dingtalk",
        "community": {"id": "c8", "name": "第八党建共同体"},
        "admins": False,
    }
    assert groups["g_admins"]["community"] is None and groups["g_admins"]["admins"] is True


async def test_a_liaison_speaks_in_a_community_group(
    console: Console, deployment: Loaded, clock: FixedClock
) -> None:
    secretary = person(deployment, "p_czj_sec")
    resp = await console.say(
        person="p_czj_ll1", group="g_c8", text=f"  打卡 T05 已完成 @{secretary.name}\n"
    )
    assert resp.status == 200
    answer = await resp.json()
    await console.inbox.drain()
    assert len(console.dispatched) == 1
    msg = console.dispatched[0]
    assert msg == Inbound(
        platform="console",
        event_id=answer["event_id"],
        chat=ChatRef("console", "g_c8", is_group=True, title="第八党建共同体工作群"),
        sender_id="p_czj_ll1",
        sender_name=person(deployment, "p_czj_ll1").name,
        text=f"打卡 T05 已完成 @{secretary.name}",
        received_at=clock.now(),
        source="console",
        mentions=("p_czj_sec",),
    )
    assert re.fullmatch(r"[0-9a-f]{32}", msg.event_id)
    [shown] = console.feed.recent()
    assert (shown.kind, shown.chat, shown.sender_id, shown.body) == (
        "inbound",
        msg.chat,
        "p_czj_ll1",
        msg.text,
    )


async def test_messages_handed_over_together_are_each_shown_before_their_work(
    db: Database, clock: FixedClock
) -> None:
    feed = ConsoleFeed(clock)
    seen: list[tuple[str, int]] = []  # (event id, how many were on the feed when it ran)

    async def one(msg: Inbound) -> None:
        seen.append((msg.event_id, len(feed.recent())))

    async def many(msgs: Sequence[Inbound]) -> None:
        seen.extend((m.event_id, len(feed.recent())) for m in msgs)

    inbox = Inbox(
        db, clock, showing_inbound(feed, one), dispatch_many=showing_inbound_many(feed, many)
    )
    said = [
        Inbound(
            platform="console",
            event_id=f"c{i}",
            chat=ChatRef("console", "g_c8", is_group=True),
            sender_id="p_czj_ll1",
            sender_name="",
            text=f"打卡 {i} 已完成",
            received_at=clock.now(),
            source="console",
        )
        for i in range(3)
    ]
    await inbox.accept(said)
    await inbox.drain()
    assert [e.body for e in feed.recent()] == ["打卡 0 已完成", "打卡 1 已完成", "打卡 2 已完成"]
    assert seen == [("c0", 3), ("c1", 3), ("c2", 3)]  # one batch, every echo ahead of it


async def test_a_one_to_one_chat_is_the_person_s_own_id(console: Console) -> None:
    assert (await console.say(person="p_admin_li", group=None, text="帮助")).status == 200
    assert (await console.say(person="p_swb_ll1", text="帮助")).status == 200
    await console.inbox.drain()
    chats = [m.chat for m in console.dispatched]
    assert chats == [
        ChatRef("console", "p_admin_li", is_group=False),
        ChatRef("console", "p_swb_ll1", is_group=False),
    ]
    assert [e.chat for e in console.feed.recent()] == chats


async def test_4000_characters_are_accepted(console: Console) -> None:
    assert (await console.say(person="p_czj_ll1", group="g_c8", text="字" * 4000)).status == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"person": "p_nobody", "group": "g_c8", "text": "打卡"}, None, 400),
        ({"person": "p_czj_ll1", "group": "g_nowhere", "text": "打卡"}, None, 400),
        ({"person": "p_czj_ll1", "group": 8, "text": "打卡"}, None, 400),
        ({"group": "g_c8", "text": "打卡"}, None, 400),
        ({"person": "p_czj_ll1", "group": "g_c8", "text": " \n "}, None, 400),
        ({"person": "p_czj_ll1", "group": "g_c8"}, None, 400),
        ({"person": "p_czj_ll1", "group": "g_c8", "text": "字" * 4001}, None, 400),
        ("打卡 已完成", None, 400),
        ('["p_czj_ll1", "g_c8", "打卡"]', None, 400),
        ({"person": "p_czj_ll1", "group": "g_c8", "text": "打卡"}, "text/plain", 415),
    ],
    ids=[
        "unknown-person",
        "unknown-group",
        "group-not-text",
        "no-person",
        "blank-text",
        "no-text",
        "text-too-long",
        "not-json",
        "not-an-object",
        "not-declared-json",
    ],
)
async def test_a_bad_message_is_refused_with_one_warning(
    console: Console,
    caplog: pytest.LogCaptureFixture,
    body: Any,
    content_type: str | None,
    status: int,
) -> None:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    caplog.clear()
    resp = await console.client.post(
        "/hooks/console",
        data=data.encode(),
        headers={"Content-Type": content_type or "application/json"},
    )
    assert resp.status == status
    await console.inbox.drain()
    assert console.dispatched == [] and console.feed.recent() == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("console callback refused")
    assert all(r.exc_info is None for r in caplog.records)


async def test_get_on_the_hook_is_refused(console: Console) -> None:
    assert (await console.client.get("/hooks/console")).status == 405


async def test_the_bot_s_post_reaches_an_open_page(console: Console, deployment: Loaded) -> None:
    sender = ConsoleSender(console.feed, deployment, Roster(deployment.spec.people))
    async with console.client.get("/console/api/events") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert (await read_event(resp)) == {"retry": "3000"}
        await sender.send(
            Destination("console", "g_c8", "console"),
            Outbound(
                body="## 本月任务\n- **主题党日**：25日前",
                title="本月任务",
                mentions=(Mention("陶新华", user_id="p_czj_ll1"), Mention("林欣然")),
                image=b"\x89PNG",
            ),
        )
        event_id, data = await next_message(resp)
    assert event_id == f"{console.feed.epoch}:1"
    assert data == {
        "seq": 1,
        "kind": "outbound",
        "at": "2026-11-02T09:00:00+08:00",
        "chat": {"id": "g_c8", "title": "第八党建共同体工作群", "is_group": True},
        "sender": {"id": "bot", "name": "督办机器人"},
        "body": "## 本月任务\n- **主题党日**：25日前",
        "format": "markdown",
        "title": "本月任务",
        "mentions": ["陶新华", "林欣然"],
        "has_image": True,
        "image": "data:image/png;base64,iVBORw==",  # shown as a picture, not a placeholder
    }


async def test_the_sender_names_chats_as_the_console_does(
    deployment: Loaded, clock: FixedClock
) -> None:
    feed = ConsoleFeed(clock)
    sender = ConsoleSender(feed, deployment, Roster(deployment.spec.people))
    text = Outbound(body="提醒", format="text")
    await sender.send(Destination("dingtalk", "cidM7OTkmpESS2TDDHfosQRrz==", "console"), text)
    await sender.send(Destination("console", "p_czj_ll1", "console", is_group=False), text)
    await sender.send(Destination("wecom", "taoxinhua", "console", is_group=False), text)
    await sender.send(Destination("console", "g_unknown", "console"), text)
    assert [e.chat for e in feed.recent()] == [
        ChatRef("console", "g_c8", is_group=True, title="第八党建共同体工作群"),
        ChatRef("console", "p_czj_ll1", is_group=False),
        ChatRef("console", "p_czj_ll1", is_group=False),
        ChatRef("console", "g_unknown", is_group=True, title="g_unknown"),
    ]


async def test_a_page_opened_later_replays_the_recent_events(
    console: Console, deployment: Loaded
) -> None:
    await console.say(person="p_czj_ll1", group="g_c8", text="第一条")
    await console.say(person="p_czj_ll2", group="g_c8", text="第二条")
    await console.inbox.drain()
    async with console.client.get("/console/api/events") as resp:
        first_id, first = await next_message(resp)
        second_id, second = await next_message(resp)
        await ConsoleSender(console.feed, deployment, Roster(deployment.spec.people)).send(
            Destination("console", "g_c8", "console"), Outbound(body="收到")
        )
        third_id, third = await next_message(resp)
    assert [first["body"], second["body"], third["body"]] == ["第一条", "第二条", "收到"]
    assert [first["sender"]["id"], third["sender"]["id"]] == ["p_czj_ll1", "bot"]
    # A reconnecting page says where it stopped and gets only what it missed.
    headers = {"Last-Event-ID": first_id}
    async with console.client.get("/console/api/events", headers=headers) as resp:
        assert [await next_message(resp), await next_message(resp)] == [
            (second_id, second),
            (third_id, third),
        ]
    # An id from before a restart means nothing here: everything is replayed.
    async with console.client.get("/console/api/events", headers={"Last-Event-ID": "0:2"}) as r:
        assert (await next_message(r))[0] == first_id


async def test_a_quiet_stream_sends_heartbeats(make_console: MakeConsole) -> None:
    console = await make_console(heartbeat=0.05)
    async with console.client.get("/console/api/events") as resp:
        await read_event(resp)  # retry
        assert await read_event(resp) == {"comment": "heartbeat"}


async def test_shutdown_ends_open_streams_at_once(console: Console) -> None:
    async with console.client.get("/console/api/events") as resp:
        await read_event(resp)
        async with asyncio.timeout(TIMEOUT):  # not the server's 60 s shutdown timeout
            await console.client.server.close()
            assert await resp.content.read() == b""
    assert console.feed.closed


def test_the_log_keeps_the_most_recent_events(clock: FixedClock) -> None:
    feed = ConsoleFeed(clock, limit=3)
    for n in range(5):
        feed.show_outbound(ChatRef("console", "g_c8", True), Outbound(body=str(n)))
    assert [e.body for e in feed.recent()] == ["2", "3", "4"]
    assert [e.body for e in feed.recent(f"{feed.epoch}:4")] == ["4"]


async def test_a_reader_too_far_behind_is_cut_off_not_waited_for(clock: FixedClock) -> None:
    feed = ConsoleFeed(clock, queue_limit=2)
    with feed.subscribe() as sub:
        for n in range(3):
            feed.show_outbound(ChatRef("console", "g_c8", True), Outbound(body=str(n)))
        got = [await sub.get(), await sub.get(), await sub.get()]
    assert [e.body if e else None for e in got] == ["0", "1", None]
    assert len(feed.recent()) == 3  # the log still has it, for the reconnect


class Peer:
    """The socket side of a request: all the guard may look at to know who is calling."""

    def __init__(self, *peername: object) -> None:
        self.peername = peername

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peername if name == "peername" else default


@pytest.mark.parametrize(
    "path", ["/console", "/console/api/directory", "/console/api/events", "/hooks/console"]
)
@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (("127.0.0.1", 50000), True),
        (("127.8.9.10", 50000), True),
        (("::1", 50000, 0, 0), True),
        (("::ffff:127.0.0.1", 50000, 0, 0), True),
        (("10.0.0.1", 50000), False),
        (("::ffff:10.0.0.1", 50000, 0, 0), False),
        (("fe80::1%eth0", 50000, 0, 2), False),
        ((), False),
    ],
)
async def test_only_a_loopback_peer_reaches_the_console(
    path: str, peer: tuple[object, ...], allowed: bool
) -> None:
    # X-Forwarded-For is what a proxy or an attacker says; only the socket peer counts.
    request = make_mocked_request(
        "GET",
        path,
        headers={"Host": "127.0.0.1:8080", "X-Forwarded-For": "127.0.0.1"},
        transport=Peer(*peer),
    )
    reached: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        reached.append(request.path)
        return web.Response(text="ok")

    resp = await local_only(handler)(request)
    assert resp.status == (200 if allowed else 403)
    assert reached == ([path] if allowed else [])


async def test_every_console_route_is_guarded_and_no_other_is(console: Console) -> None:
    # The guard is on each route, not a middleware (which every callback would pay for): a
    # console route added without it would be open to anyone who can reach the port.
    app = console.client.app
    assert not app.middlewares
    guarded, open_ = [], []
    for resource in app.router.resources():
        path = resource.canonical
        for route in resource:
            request = make_mocked_request(
                route.method if route.method != "*" else "POST",
                path,
                headers={"Host": "127.0.0.1:8080"},
                transport=Peer("10.0.0.1", 50000),
                app=app,
            )
            console_route = path == "/hooks/console" or path.startswith("/console")
            (guarded if console_route else open_).append(path)
            if console_route:
                async with asyncio.timeout(TIMEOUT):  # an open event stream would not end
                    assert (await route.handler(request)).status == 403, path
    assert sorted(set(guarded)) == sorted(
        [
            "/console",
            "/console/console.js",
            "/console/markdown.js",
            "/console/console.css",
            "/console/api/directory",
            "/console/api/events",
            "/hooks/console",
        ]
    )
    assert "/hooks/{path}" in open_


async def test_the_generic_hook_route_never_serves_the_console(console: Console) -> None:
    # /hooks/{path} would take "console" too if the adapter were among the platforms' ones.
    assert "console" not in console.client.app[ADAPTERS]
    assert "console" not in webhook_adapters(Settings(console=True, delivery="console"))


async def test_a_foreign_host_or_origin_is_refused(console: Console) -> None:
    # A page on another site that the browser resolves to 127.0.0.1 (DNS rebinding), or that
    # posts across sites, still reaches us from a loopback peer: the names give it away.
    directory = await console.client.get(
        "/console/api/directory", headers={"Host": "rebound.example:8080"}
    )
    assert directory.status == 403
    foreign = await console.client.post(
        "/hooks/console",
        json={"person": "p_admin_wang", "group": "g_admins", "text": "审核通过"},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403
    here = f"http://127.0.0.1:{console.client.port}"
    local = await console.client.post(
        "/hooks/console",
        json={"person": "p_admin_wang", "group": "g_admins", "text": "审核通过"},
        headers={"Origin": here},
    )
    assert local.status == 200
    await console.inbox.drain()
    assert [m.text for m in console.dispatched] == ["审核通过"]


def outward_address() -> str | None:
    """This machine's address towards the network, if it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # UDP: picks a route, sends nothing
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


async def test_a_real_connection_from_the_network_is_refused(
    make_console: MakeConsole, caplog: pytest.LogCaptureFixture
) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    console = await make_console(host=address)
    caplog.clear()
    resp = await console.client.get("/console/api/directory")
    assert resp.status == 403
    assert f"peer '{address}' is not a loopback address" in caplog.text
