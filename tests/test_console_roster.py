"""The console's roster and directory at their cheapest: @-mentions found by looking names up,
people's chats made on demand, and the directory kept gzip-compressed — over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.adapters.base import Destination
from bot.clock import FixedClock
from bot.console import ConsoleFeed, ConsoleSender, add_console_routes
from bot.console.roster import Lookup, Roster
from bot.console.routes import CONSOLE
from bot.db import Database
from bot.deployment import Loaded, load
from bot.inbound import Inbox
from bot.messages import ChatRef, Inbound, Outbound
from bot.web import ADAPTERS, INBOX, add_routes
from tests import configs


@pytest.fixture
def deployment(tmp_path: Path) -> Loaded:
    data = configs.mini()
    data["people"] += [
        {"id": "p_wl", "name": "王立", "wecom": "wangli"},
        {"id": "p_wlx", "name": "王立新", "dingtalk": "staff_wlx"},
    ]
    data["units"][1]["liaisons"] += ["p_wl", "p_wlx"]
    return load(configs.write(tmp_path / "conf", data), env=configs.ENV, live=False)


async def test_the_longest_name_after_each_at_is_the_one_meant(
    aiohttp_client: Any, db: Database, clock: FixedClock, deployment: Loaded
) -> None:
    dispatched: list[Inbound] = []

    async def record(msg: Inbound) -> None:
        dispatched.append(msg)

    app = web.Application()
    add_routes(app)
    app[ADAPTERS] = {}
    add_console_routes(app, ConsoleFeed(clock), deployment, Roster(deployment.spec.people))
    inbox = Inbox(db, clock, record)
    app[INBOX] = inbox
    client = await aiohttp_client(app)
    text = "@王立新@王立 请 @王立新 和 @甲书记、@乙联络员 看 @王 @@王立 @没有这人"
    resp = await client.post("/hooks/console", json={"person": "p_a_ll", "text": text})
    assert resp.status == 200
    await inbox.drain()
    [msg] = dispatched
    assert msg.sender_name == "甲联络员"
    # In order of first mention, once each; 王立新 is never read as 王立 + 新.
    assert msg.mentions == ("p_wlx", "p_wl", "p_a_sec", "p_b_ll")
    itself = await client.post(
        "/hooks/console", json={"person": "p_wl", "text": "@王立 自己 @王立新"}
    )
    assert itself.status == 200
    await inbox.drain()
    assert dispatched[1].mentions == ("p_wlx",)  # the sender is left out


def test_a_roster_that_learns_again_forgets_what_it_made_from_the_old_people(
    deployment: Loaded,
) -> None:
    roster = Roster()
    assert "p_wl" not in roster.names and roster.mentioned("@王立新", "p_a_ll") == ()
    roster.learn(deployment.spec.people)
    assert roster.names["p_wlx"] == "王立新" and roster.accounts["staff_wlx"] == "p_wlx"
    assert roster.mentioned("@王立新", "p_a_ll") == ("p_wlx",)
    assert list(roster.people())[-1] == ("p_wlx", "王立新")
    roster.learn([p for p in deployment.spec.people if p.id != "p_wlx"])
    assert "p_wlx" not in roster.names and "staff_wlx" not in roster.accounts
    assert roster.mentioned("@王立新", "p_a_ll") == ("p_wl",)  # 王立, and 新 is text


async def test_people_s_chats_are_made_when_a_message_goes_to_them(
    deployment: Loaded, clock: FixedClock
) -> None:
    feed = ConsoleFeed(clock)
    roster = Roster(deployment.spec.people)
    sender = ConsoleSender(feed, deployment, roster)
    text = Outbound(body="提醒", format="text")
    for destination in (
        Destination("console", "p_wl", "console", is_group=False),  # a console person, by id
        Destination("wecom", "wangli", "console", is_group=False),  # by WeCom account
        Destination("dingtalk", "staff_wlx", "console", is_group=False),  # by DingTalk account
        Destination("console", "p_nobody", "console", is_group=False),  # unknown: its own id
        Destination("wecom", "wrkADMINS", "console"),  # a group by the platform's chat id
        Destination("console", "p_wl", "console"),  # a person's id is no group's
    ):
        await sender.send(destination, text)
    assert [e.chat for e in feed.recent()] == [
        ChatRef("console", "p_wl", is_group=False),
        ChatRef("console", "p_wl", is_group=False),
        ChatRef("console", "p_wlx", is_group=False),
        ChatRef("console", "p_nobody", is_group=False, title="p_nobody"),
        ChatRef("console", "g_admins", is_group=True, title="工委群"),
        ChatRef("console", "p_wl", is_group=True, title="p_wl"),
    ]
    # Sending needs no name index: built only for typed @-mentions.
    assert "ids_by_name" not in vars(roster)


async def console_app(
    aiohttp_client: Any, clock: FixedClock, deployment: Loaded
) -> tuple[web.Application, Any]:
    """The console's routes alone, and a client for them."""
    app = web.Application()
    add_console_routes(app, ConsoleFeed(clock), deployment, Roster(deployment.spec.people))
    return app, await aiohttp_client(app)


async def test_the_directory_is_sent_compressed_to_whoever_takes_gzip(
    aiohttp_client: Any, clock: FixedClock, deployment: Loaded
) -> None:
    _, client = await console_app(aiohttp_client, clock, deployment)
    path = "/console/api/directory"
    packed = await client.get(path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert packed.status == 200
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding"
    body = await packed.read()
    plain = await client.get(path, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    text = await plain.read()
    assert gzip.decompress(body) == text
    data = json.loads(text)
    assert [p["id"] for p in data["people"]] == [
        "p_admin",
        "p_a_sec",
        "p_a_ll",
        "p_b_ll",
        "p_wl",
        "p_wlx",
    ]
    wlx = data["people"][-1]
    assert wlx == {
        "id": "p_wlx",
        "name": "王立新",
        "roles": ["liaison"],
        "units": [{"id": "ub", "short": "乙局", "role": "liaison"}],
        "home_group": "g_c1",
    }
    assert [u["people"] for u in data["units"]] == [
        ["p_a_sec", "p_a_ll"],
        ["p_b_ll", "p_wl", "p_wlx"],
    ]
    assert [g["id"] for g in data["groups"]] == ["g_admins", "g_c1"]


async def test_a_directory_of_thousands_is_whole_valid_json(
    aiohttp_client: Any, clock: FixedClock, tmp_path: Path
) -> None:
    """Written a thousand items to a piece: the pieces must join into one document."""
    data = configs.mini()
    data["people"] += [{"id": f"p{i}", "name": f"人员{i}"} for i in range(2500)]
    data["units"] += [
        {"id": f"u{i}", "name": f"单位{i}", "short": f"单{i}", "liaisons": [f"p{i}"]}
        for i in range(2500)
    ]
    deployment = load(configs.write(tmp_path / "conf", data), env=configs.ENV, live=False)
    app = web.Application()
    add_console_routes(app, ConsoleFeed(clock), deployment, Roster(deployment.spec.people))
    client = await aiohttp_client(app)
    directory = await (await client.get("/console/api/directory")).json()
    assert len(directory["people"]) == 2504 and len(directory["units"]) == 2502
    assert directory["people"][-1]["units"] == [
        {"id": "u2499", "short": "单2499", "role": "liaison"}
    ]
    assert len({u["id"] for u in directory["units"]}) == 2502


async def test_the_directory_is_made_once_for_requests_arriving_together(
    aiohttp_client: Any, clock: FixedClock, deployment: Loaded
) -> None:
    app, client = await console_app(aiohttp_client, clock, deployment)
    made = app[CONSOLE].directory
    answers = await asyncio.gather(
        *(client.get("/console/api/directory", auto_decompress=False) for _ in range(5))
    )
    bodies = {await a.read() for a in answers}
    assert len(bodies) == 1 and {a.status for a in answers} == {200}
    assert made.gzipped() is made.gzipped()  # kept, not made again


def test_a_lookup_answers_as_the_dict_it_replaces_at_a_fifth_of_its_size() -> None:
    pairs = [(f"p{i:06d}", f"名{i}") for i in range(200_004, 0, -1)]  # a province's people
    pairs += [("p000007", "后来的"), ("w1", "甲"), ("w1", "乙")]
    looked = Lookup(pairs)
    plain: dict[str, str] = {}
    for key, value in pairs:
        plain.setdefault(key, value)
    assert len(looked) == len(plain)
    assert all(looked[k] == v and k in looked for k, v in plain.items())
    assert looked["p000007"] == "名7" and looked["w1"] == "甲"  # the first one named stays
    assert looked.get("p999999") is None and "p999999" not in looked and "" not in looked
    assert looked.get("p0") is None and "w2" not in looked and "a" not in looked
    with pytest.raises(KeyError):
        looked["nobody"]
    # The dict and the str objects it keeps, against the packed text and offsets.
    held = sys.getsizeof(plain) + sum(map(sys.getsizeof, [*plain, *plain.values()]))
    assert looked.nbytes < held / 5
