"""Whom to @-mention for a unit on a platform: its liaisons, its secretary; and the units
with nobody in a role.

督办 and 提示 ask for every unit they post about at once: tens of thousands of ids at a
province's scale, each list bound as one value (bot.ledger.idlists).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.ledger.idlists import among
from bot.messages import Mention
from bot.models import CommunityMember, Identity, Person, Role, Unit


async def mentions_for(
    session: AsyncSession, unit_ids: Iterable[int], role: str, platform: str
) -> dict[int, list[Mention]]:
    """Per unit, the active people with `role` there, as mentions on `platform` (by name only
    where they have no account on it)."""
    ids = list(set(unit_ids))
    if not ids:
        return {}
    # On the session's connection, not through the ORM: columns only, and a heavy 督办 day
    # reads 90,000 rows (0.1 s less of the CPU).
    conn = await session.connection()
    rows = (
        await conn.execute(
            select(Role.unit_id, Person.name, Person.mobile, Identity.user_id)
            .join(Person, Person.id == Role.person_id)
            .outerjoin(
                Identity, (Identity.person_id == Person.id) & (Identity.platform == platform)
            )
            .where(among(session, Role.unit_id, ids), Role.role == role, Person.active)
            .order_by(Role.unit_id, Person.id)
        )
    ).all()
    out: dict[int, list[Mention]] = defaultdict(list)
    for unit_id, name, mobile, user_id in rows:
        if unit_id is not None:
            out[unit_id].append(Mention(name, user_id=user_id, mobile=mobile))
    return dict(out)


async def lead_of(session: AsyncSession, unit_ids: Iterable[int]) -> dict[int, int]:
    """Per unit, the lead unit of its community (itself, for a lead unit)."""
    ids = list(set(unit_ids))
    if not ids:
        return {}
    member = aliased(CommunityMember)
    lead = aliased(CommunityMember)
    rows = (
        await session.execute(
            select(member.unit_id, lead.unit_id)
            .join(lead, (lead.community_id == member.community_id) & lead.is_lead)
            .where(among(session, member.unit_id, ids))
        )
    ).all()
    return {unit: lead_unit for unit, lead_unit in rows}


async def units_without(session: AsyncSession, role: str) -> dict[int, list[str]]:
    """Per community id, the short names of its active units with no active person in `role`:
    nobody there to @-mention, nobody to check in (lead unit first, then in unit order)."""
    staffed = (
        select(Role.id)
        .join(Person, Person.id == Role.person_id)
        .where(Role.unit_id == Unit.id, Role.role == role, Person.active)
    )
    rows = await session.execute(
        select(CommunityMember.community_id, Unit.short_name)
        .join(Unit, Unit.id == CommunityMember.unit_id)
        .where(Unit.active, ~staffed.exists())
        .order_by(CommunityMember.community_id, CommunityMember.is_lead.desc(), Unit.id)
    )
    out: dict[int, list[str]] = defaultdict(list)
    for community_id, short in rows:
        out[community_id].append(short)
    return dict(out)
