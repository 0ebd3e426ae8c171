"""Applying the configuration to the ledger keeps history and writes the audit log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import load
from bot.models import (
    AuditEntry,
    CheckIn,
    Community,
    CommunityMember,
    Identity,
    Person,
    PlanTask,
    PlanTaskUnit,
    Role,
    TaskInstance,
    Unit,
)
from bot.sync import sync
from bot.sync_rows import IdSet
from tests.configs import ENV, mini, write


async def apply(db: Database, tmp_path: Path, data: dict, clock: FixedClock):
    spec = load(write(tmp_path, data), env=ENV).spec
    async with db.begin() as s:
        return await sync(s, spec, clock.now())


async def test_first_sync_creates_everything(db: Database, tmp_path: Path, clock) -> None:
    report = await apply(db, tmp_path, mini(), clock)
    assert report.created == {
        "area": 1,
        "community": 1,
        "group": 2,
        "holder": 1,
        "person": 4,
        "task": 3,
        "unit": 2,
    }
    async with db.begin() as s:
        lead = await s.scalar(select(Unit.key).join(CommunityMember).where(CommunityMember.is_lead))
        assert lead == "ua"
        roles = (
            await s.execute(select(Person.key, Role.role).join(Person).order_by(Person.key))
        ).all()
        assert [tuple(r) for r in roles] == [
            ("p_a_ll", "liaison"),
            ("p_a_sec", "secretary"),
            ("p_admin", "admin"),
            ("p_b_ll", "liaison"),
        ]
        assert await s.scalar(select(func.count()).select_from(Identity)) == 4
        named = await s.scalar(select(Unit.key).join(PlanTaskUnit, PlanTaskUnit.unit_id == Unit.id))
        assert named == "ub"
        assert (
            await s.scalar(select(AuditEntry.detail).where(AuditEntry.action == "config.sync"))
            is not None
        )


async def test_second_sync_without_changes_changes_nothing(db, tmp_path, clock) -> None:
    await apply(db, tmp_path, mini(), clock)
    async with db.begin() as s:
        before = await s.scalar(select(func.count()).select_from(AuditEntry))
    report = await apply(db, tmp_path, mini(), clock)
    assert not report.changed
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == before


async def test_rename_and_removal_keep_history(db: Database, tmp_path: Path, clock) -> None:
    await apply(db, tmp_path, mini(), clock)
    now = clock.now()
    async with db.begin() as s:
        ub = await s.scalar(select(Unit).where(Unit.key == "ub"))
        task = await s.scalar(select(PlanTask).where(PlanTask.key == "T01"))
        reporter = await s.scalar(select(Person).where(Person.key == "p_b_ll"))
        inst = TaskInstance(
            task_id=task.id,
            unit_id=ub.id,
            period="2026-11",
            no=1,
            due_at=now + timedelta(days=20),
            created_at=now,
            updated_at=now,
        )
        s.add(inst)
        await s.flush()
        s.add(
            CheckIn(
                instance_id=inst.id,
                reporter_id=reporter.id,
                for_unit_id=ub.id,
                text="已开展主题党日",
                platform="dingtalk",
                platform_msg_id="m1",
                submitted_at=now,
                updated_at=now,
            )
        )

    data = mini()
    data["units"][0]["name"] = "甲局党委（更名）"
    data["units"].pop(1)
    data["communities"][0]["members"] = ["ua"]
    data["tasks"][2]["owners"] = ["ua"]
    data["people"].pop(3)
    clock.at += timedelta(days=1)
    report = await apply(db, tmp_path, data, clock)
    assert report.removed == {"person": 1, "unit": 1}

    async with db.begin() as s:
        ua = await s.scalar(select(Unit).where(Unit.key == "ua"))
        assert ua.name == "甲局党委（更名）"
        ub = await s.scalar(select(Unit).where(Unit.key == "ub"))
        assert not ub.active and ub.removed_at == clock.now()
        kept = await s.scalar(
            select(func.count())
            .select_from(CheckIn)
            .join(TaskInstance)
            .where(TaskInstance.unit_id == ub.id)
        )
        assert kept == 1
        rename = await s.scalar(select(AuditEntry).where(AuditEntry.action == "unit.update"))
        assert rename.before == {"name": "甲局机关党委"}
        assert rename.after == {"name": "甲局党委（更名）"}
        assert rename.at == clock.now()
        removal = await s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "unit.remove", AuditEntry.entity_key == "ub"
            )
        )
        assert removal is not None
        members = (await s.scalars(select(CommunityMember.unit_id))).all()
        assert members == [ua.id]

    # Coming back restores the same row, with its past.
    report = await apply(db, tmp_path, mini(), clock)
    async with db.begin() as s:
        back = await s.scalar(select(Unit).where(Unit.key == "ub"))
        assert back.id == ub.id and back.active and back.removed_at is None


async def test_chat_granted_roles_survive_a_sync(db: Database, tmp_path: Path, clock) -> None:
    await apply(db, tmp_path, mini(), clock)
    async with db.begin() as s:
        person = await s.scalar(select(Person).where(Person.key == "p_admin"))
        ub = await s.scalar(select(Unit).where(Unit.key == "ub"))
        s.add(
            Role(
                person_id=person.id,
                role="liaison",
                unit_id=ub.id,
                source="chat",
                created_at=clock.now(),
            )
        )
    data = mini()
    data["committee"]["admins"] = []
    await apply(db, tmp_path, data, clock)
    async with db.begin() as s:
        roles = (
            await s.execute(select(Role.role, Role.source).where(Role.person_id == person.id))
        ).all()
        assert [tuple(r) for r in roles] == [("liaison", "chat")]


async def test_community_and_group_changes_are_audited(db, tmp_path, clock) -> None:
    await apply(db, tmp_path, mini(), clock)
    data = mini()
    data["communities"][0]["lead"] = "ub"
    data["groups"][1]["name"] = "第一共同体工作群"
    await apply(db, tmp_path, data, clock)
    async with db.begin() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
        assert {"membership.update", "group.update"} <= actions
        lead = await s.scalar(select(Unit.key).join(CommunityMember).where(CommunityMember.is_lead))
        assert lead == "ub"
        assert (await s.scalar(select(Community))).name == "第一共同体"


async def test_people_approved_by_chat_survive_a_sync(db: Database, tmp_path: Path, clock) -> None:
    await apply(db, tmp_path, mini(), clock)
    async with db.begin() as s:
        s.add(
            Person(
                key="chat_dingtalk_0123",
                name="新联络员",
                active=True,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    report = await apply(db, tmp_path, mini(), clock)
    assert "person" not in report.removed
    async with db.begin() as s:
        assert (await s.scalar(select(Person).where(Person.key == "chat_dingtalk_0123"))).active


async def test_accounts_outside_the_configuration_stay_and_removed_ones_go(
    db: Database, tmp_path: Path, clock
) -> None:
    await apply(db, tmp_path, mini(), clock)
    async with db.begin() as s:
        # Someone an admin approved by chat: a person and an account the files never named.
        guest = Person(
            key="chat_guest", name="来访者", created_at=clock.now(), updated_at=clock.now()
        )
        s.add(guest)
        await s.flush()
        s.add(Identity(person_id=guest.id, platform="dingtalk", user_id="staff_guest"))
    data = mini()
    for person in data["people"]:
        if person["id"] == "p_b_ll":
            del person["dingtalk"]  # taken out of the files: the sync removes it
    await apply(db, tmp_path, data, clock)
    async with db.begin() as s:
        accounts = set(await s.scalars(select(Identity.user_id)))
    assert "staff_guest" in accounts
    assert "staff_b_ll" not in accounts
    assert len(accounts) == 4


def test_id_set_holds_exactly_its_ids() -> None:
    ids = IdSet([3, 1, 200_000])
    assert [i for i in (0, 1, 2, 3, 4, 199_999, 200_000, 200_001, -1) if i in ids] == [
        1,
        3,
        200_000,
    ]
    assert "1" not in ids
    assert 0 not in IdSet([])
