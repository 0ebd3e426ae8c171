"""The sample configuration the quick start runs on is valid and shaped like seed 002."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from bot.deployment import load
from bot.duerules import parse_due_rule
from bot.models import Community, CommunityMember, PlanTask, Role, Unit
from bot.sync import sync
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS

SECRETS = SAMPLE_SECRETS


def test_sample_is_valid_live_with_its_secrets_and_on_the_console_without() -> None:
    assert load(SAMPLE_CONFIG, env=SECRETS).warnings == []
    console = load(SAMPLE_CONFIG, env={}, live=False)
    assert {w.severity for w in console.warnings} == {"warning"}
    assert len(console.warnings) == len(SECRETS)


def test_sample_has_the_shape_of_the_seeds() -> None:
    spec = load(SAMPLE_CONFIG, env=SECRETS).spec
    assert len(spec.units) == 58
    assert len(spec.communities) == 8
    assert all(7 <= len(c.members) <= 8 for c in spec.communities)
    assert len(spec.responsibilities.areas) == 6 and len(spec.responsibilities.holders) == 4
    assert 55 <= len(spec.tasks) <= 65
    cadences = Counter(t.cadence for t in spec.tasks)
    assert set(cadences) == {"once", "monthly", "quarterly", "yearly"}
    assert {parse_due_rule(t.due).cadence for t in spec.tasks} == set(cadences)
    platforms = Counter(g.platform for g in spec.groups)
    assert platforms["wecom"] >= 2 and platforms["dingtalk"] >= 2
    admins = {p.id: p for p in spec.people if p.id in spec.committee.admins}
    assert any(p.wecom for p in admins.values()) and any(p.dingtalk for p in admins.values())


async def test_sample_syncs_into_the_ledger(db, clock) -> None:
    spec = load(SAMPLE_CONFIG, env=SECRETS).spec
    async with db.begin() as s:
        report = await sync(s, spec, clock.now())
    assert report.created["unit"] == 58
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(Unit)) == 58
        assert await s.scalar(select(func.count()).select_from(Community)) == 8
        leads = await s.scalar(
            select(func.count()).select_from(CommunityMember).where(CommunityMember.is_lead)
        )
        assert leads == 8
        assert await s.scalar(select(func.count()).select_from(PlanTask)) == len(spec.tasks)
        liaisons = await s.scalar(
            select(func.count()).select_from(Role).where(Role.role == "liaison")
        )
        assert liaisons == sum(len(u.liaisons) for u in spec.units)
