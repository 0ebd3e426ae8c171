"""Who is writing, remembered briefly: read once per person while nothing changes, forgotten the
moment this process changes people (config sync, an approved 申请绑定), and never kept longer
than its time to live for changes it cannot see (another instance, `duban config apply`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import load
from bot.ledger import approvals
from bot.ledger.people import People, Who
from bot.models import BindRequest, Unit
from bot.sync import sync
from tests.configs import ENV, mini, write


class Ticker:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def synced(db: Database, tmp_path: Path, clock: FixedClock) -> Database:
    async with db.begin() as session:
        await sync(session, load(write(tmp_path, mini()), env=ENV).spec, clock.now())
    return db


def selects(db: Database) -> list[int]:
    """Counts the SELECTs on this engine (observed, not altered)."""
    seen = [0]

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen[0] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    return seen


async def who(db: Database, people: People, user_id: str) -> Who | None:
    async with db.begin() as session:
        return await people.whois(session, "dingtalk", user_id)


def unit_keys(found: Who | None) -> list[str]:
    assert found is not None
    return [u.key for u in found.units]


async def test_a_person_is_read_once_within_the_time_to_live(synced: Database) -> None:
    ticker = Ticker()
    people = People(ttl=10, now=ticker)
    counted = selects(synced)
    first = await who(synced, people, "staff_a_ll")
    assert unit_keys(first) == ["ua"] and first is not None and first.name == "甲联络员"
    reads = counted[0]
    assert await who(synced, people, "staff_a_ll") == first
    assert counted[0] == reads  # from memory
    ticker.t += 11
    assert await who(synced, people, "staff_a_ll") == first
    assert counted[0] == reads + 1  # expired: read again


async def test_an_approved_bind_request_is_seen_at_once(
    synced: Database, clock: FixedClock
) -> None:
    people = People(ttl=3600, now=Ticker())
    assert unit_keys(await who(synced, people, "staff_b_ll")) == ["ub"]
    assert await who(synced, people, "staff_new") is None
    async with synced.begin() as session:
        ua = await session.scalar(select(Unit.id).where(Unit.key == "ua"))
        assert ua is not None
        for staff, name in (("staff_b_ll", "乙联络员"), ("staff_new", "新联络员")):
            request = BindRequest(
                platform="dingtalk",
                user_id=staff,
                name=name,
                unit_id=ua,
                status="pending",
                requested_at=clock.now(),
            )
            session.add(request)
            await session.flush()
            await approvals.approve(
                session,
                await approvals.open_request(session, request.id),
                admin_id=1,
                now=clock.now(),
                actor="test",
            )
    # Known before, with a new unit now; unknown before, never remembered as unknown.
    assert sorted(unit_keys(await who(synced, people, "staff_b_ll"))) == ["ua", "ub"]
    assert unit_keys(await who(synced, people, "staff_new")) == ["ua"]


async def test_a_config_sync_that_changes_people_is_seen_at_once(
    synced: Database, tmp_path: Path, clock: FixedClock
) -> None:
    people = People(ttl=3600, now=Ticker())
    assert unit_keys(await who(synced, people, "staff_b_ll")) == ["ub"]
    data = mini()
    data["units"][1]["liaisons"] = []
    async with synced.begin() as session:
        await sync(session, load(write(tmp_path / "v2", data), env=ENV).spec, clock.now())
    assert unit_keys(await who(synced, people, "staff_b_ll")) == []


async def test_a_change_this_process_cannot_see_lasts_at_most_the_time_to_live(
    synced: Database,
) -> None:
    ticker = Ticker()
    people = People(ttl=10, now=ticker)
    assert unit_keys(await who(synced, people, "staff_b_ll")) == ["ub"]
    # Another instance (or `duban config apply`) removes the role: no event reaches us.
    async with synced.engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM roles WHERE role = 'liaison' AND person_id ="
                " (SELECT person_id FROM identities WHERE user_id = 'staff_b_ll')"
            )
        )
    assert unit_keys(await who(synced, people, "staff_b_ll")) == ["ub"]  # still remembered
    ticker.t += 10.5
    assert unit_keys(await who(synced, people, "staff_b_ll")) == []


def test_the_time_to_live_is_short() -> None:
    assert People().ttl <= 30  # across instances this is how stale a role may be
