"""Who is writing: a platform account resolved to a person, their units and roles."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Community, CommunityMember, Identity, Person, Role, Unit


@dataclass(frozen=True, slots=True)
class UnitRef:
    id: int
    key: str
    name: str
    short: str
    community_id: int | None
    is_lead: bool


@dataclass(frozen=True, slots=True)
class Who:
    person_id: int
    key: str
    name: str
    is_admin: bool
    liaison_of: tuple[UnitRef, ...]
    secretary_of: tuple[UnitRef, ...]

    @property
    def units(self) -> tuple[UnitRef, ...]:
        """The units this person acts for, liaison roles first."""
        seen = {u.id for u in self.liaison_of}
        return self.liaison_of + tuple(u for u in self.secretary_of if u.id not in seen)

    @property
    def lead_communities(self) -> tuple[int, ...]:
        return tuple(u.community_id for u in self.units if u.is_lead and u.community_id)


async def whois(session: AsyncSession, platform: str, user_id: str) -> Who | None:
    """The active person behind an account; on the console the account is the person id."""
    if platform == "console":
        stmt = select(Person).where(Person.key == user_id, Person.active)
    else:
        stmt = (
            select(Person)
            .join(Identity, Identity.person_id == Person.id)
            .where(Identity.platform == platform, Identity.user_id == user_id, Person.active)
        )
    person = await session.scalar(stmt)
    if person is None:
        return None
    rows = (
        await session.execute(
            select(Role.role, Unit, CommunityMember)
            .outerjoin(Unit, Unit.id == Role.unit_id)
            .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
            .where(Role.person_id == person.id)
            .order_by(Unit.id)
        )
    ).all()
    liaison: list[UnitRef] = []
    secretary: list[UnitRef] = []
    admin = False
    for role, unit, member in rows:
        if role == "admin":
            admin = True
            continue
        if unit is None or not unit.active:
            continue
        ref = unit_ref(unit, member)
        (liaison if role == "liaison" else secretary).append(ref)
    return Who(person.id, person.key, person.name, admin, tuple(liaison), tuple(secretary))


def unit_ref(unit: Unit, member: CommunityMember | None) -> UnitRef:
    return UnitRef(
        unit.id,
        unit.key,
        unit.name,
        unit.short_name,
        member.community_id if member else None,
        bool(member and member.is_lead),
    )


async def find_unit(session: AsyncSession, text: str) -> list[UnitRef]:
    """Active units whose name, short name or id matches `text`; exact matches win."""
    text = text.strip()
    if not text:
        return []
    units = (
        await session.execute(
            select(Unit, CommunityMember)
            .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
            .where(Unit.active)
        )
    ).all()
    exact = [unit_ref(u, m) for u, m in units if text in (u.name, u.short_name, u.key)]
    if exact:
        return exact
    return [unit_ref(u, m) for u, m in units if text in u.name or text in u.short_name]


async def community_units(session: AsyncSession, community_id: int) -> list[UnitRef]:
    rows = (
        await session.execute(
            select(Unit, CommunityMember)
            .join(CommunityMember, CommunityMember.unit_id == Unit.id)
            .where(CommunityMember.community_id == community_id, Unit.active)
            .order_by(CommunityMember.is_lead.desc(), Unit.id)
        )
    ).all()
    return [unit_ref(u, m) for u, m in rows]


async def community_name(session: AsyncSession, community_id: int) -> str:
    return (await session.scalar(select(Community.name).where(Community.id == community_id))) or ""
