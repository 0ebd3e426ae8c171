"""The sync at scale: writes split under PostgreSQL's parameter limit, and a mass change
audited in bounded rows that still say what changed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import load
from bot.models import AuditEntry, CommunityMember, Identity, Person, Role, Unit
from bot.sync import sync
from bot.sync_audit import BATCH, DETAIL_LIMIT
from tests.configs import ENV, mini, write

UNITS = 30
PER_UNIT = 20  # a secretary and 19 liaisons: 600 people, well past the audit's detail limit


def crowd(units: int = UNITS, per_unit: int = PER_UNIT, tag: str = "") -> dict[str, Any]:
    """mini() with `units` more units of `per_unit` people each, all in community c1."""
    data = mini()
    for i in range(units):
        uid = f"x{i:03d}"
        ids = [f"p{uid}_{n}" for n in range(per_unit)]
        data["people"] += [
            {"id": p, "name": f"{tag}人员{p}", "dingtalk": f"d_{p}", "wecom": f"w_{p}"} for p in ids
        ]
        data["units"].append(
            {
                "id": uid,
                "name": f"{tag}第{i}单位",
                "short": f"单位{i}",
                "secretary": ids[0],
                "liaisons": ids[1:],
            }
        )
        data["communities"][0]["members"].append(uid)
    return data


async def apply(db: Database, path: Path, data: dict[str, Any], clock: FixedClock, **kw: Any):
    spec = load(write(path, data), env=ENV).spec
    async with db.begin() as s:
        return await sync(s, spec, clock.now(), **kw)


async def entries(db: Database, action: str, since: Any = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    async with db.begin() as s:
        return list((await s.scalars(query)).all())


async def test_writes_in_chunks_come_out_whole(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    # Chunks of 7 ids stand in for PostgreSQL's 32,767 parameters: every IN list, deletion and
    # deactivation is split many times over, and each chunk must land.
    report = await apply(db, tmp_path / "a", crowd(), clock, chunk=7)
    people = 4 + UNITS * PER_UNIT
    assert report.created["person"] == people
    async with db.begin() as s:
        assert (
            await s.scalar(select(func.count()).select_from(Identity)) == 4 + UNITS * 2 * PER_UNIT
        )
        assert await s.scalar(select(func.count()).select_from(Role)) == people
        assert await s.scalar(select(func.count()).select_from(CommunityMember)) == 2 + UNITS

    # Two thirds of the units leave, with their people, accounts and roles.
    clock.at += timedelta(days=1)
    report = await apply(db, tmp_path / "b", crowd(units=10), clock, chunk=7)
    assert report.removed == {"unit": 20, "person": 20 * PER_UNIT}
    async with db.begin() as s:
        active = select(func.count()).select_from(Person).where(Person.active)
        assert await s.scalar(active) == 4 + 10 * PER_UNIT
        gone = await s.scalar(select(func.count()).select_from(Unit).where(~Unit.active))
        assert gone == 20
        left = select(func.count()).select_from(Role).where(Role.source == "config")
        assert await s.scalar(left) == 4 + 10 * PER_UNIT  # roles of people who left: deleted
        assert await s.scalar(select(func.count()).select_from(CommunityMember)) == 2 + 10
    # And back again: the same rows, active, with their accounts and roles.
    report = await apply(db, tmp_path / "c", crowd(), clock, chunk=7)
    assert report.updated["person"] == 20 * PER_UNIT and "person" not in report.created
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(Person).where(Person.active)) == (
            4 + UNITS * PER_UNIT
        )
        assert await s.scalar(select(func.count()).select_from(Role)) == people


async def test_a_mass_change_is_audited_in_bounded_rows(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    await apply(db, tmp_path / "a", crowd(), clock)
    people = 4 + UNITS * PER_UNIT
    assert people > DETAIL_LIMIT
    created = await entries(db, "person.create")
    # 604 people created: summary rows of at most BATCH keys, all keys there once.
    assert len(created) == -(-people // BATCH)
    keys = [k for e in created for k in e.after["keys"]]
    assert len(keys) == len(set(keys)) == people and "px000_0" in keys
    assert all(e.entity_key == "*" and e.after["count"] == people for e in created)
    assert "共 604 个" in created[0].detail

    clock.at += timedelta(days=1)
    report = await apply(db, tmp_path / "b", crowd(tag="新"), clock)
    assert report.updated["person"] == UNITS * PER_UNIT
    updated = await entries(db, "person.update")
    assert len(updated) == -(-(UNITS * PER_UNIT) // BATCH)
    # Every renamed person is there with before and after, none twice.
    before = {k: v for e in updated for k, v in e.before.items()}
    after = {k: v for e in updated for k, v in e.after.items()}
    assert len(before) == len(after) == UNITS * PER_UNIT
    assert before["px007_3"] == {"name": "人员px007_3"}
    assert after["px007_3"] == {"name": "新人员px007_3"}
    assert all(e.at == clock.now() and e.actor == "config" for e in updated)
    # No row anywhere holds more than a batch: the old sync put all 1,204 accounts in one.
    async with db.begin() as s:
        rows = (await s.execute(select(AuditEntry.before, AuditEntry.after))).all()
    assert max(max(_entries(b), _entries(a)) for b, a in rows) <= BATCH


def _entries(value: dict[str, Any] | None) -> int:
    """How many entities an audit value speaks of."""
    if not value:
        return 0
    listed = value.get("keys", value.get("value"))
    return len(listed) if isinstance(listed, list) else len(value)


async def test_few_changes_keep_one_row_each(db: Database, tmp_path: Path, clock) -> None:
    await apply(db, tmp_path / "a", crowd(), clock)
    data = crowd()
    data["people"][10]["dingtalk"] = "d_moved"
    data["units"][3]["liaisons"] = data["units"][3]["liaisons"][1:]
    clock.at += timedelta(days=1)
    report = await apply(db, tmp_path / "b", data, clock)
    assert report.updated == {"identity": 1, "role": 1}
    [identity] = await entries(db, "identity.update", since=clock.now())
    person = data["people"][10]["id"]
    assert identity.entity_key == person
    assert identity.before == {"value": [["dingtalk", f"d_{person}"]]}
    assert identity.after == {"value": [["dingtalk", "d_moved"]]}
    [role] = await entries(db, "role.update", since=clock.now())
    assert role.entity_key == "px001_1"
    assert role.before == {"value": [["liaison", "x001"]]} and role.after is None
