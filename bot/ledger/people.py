"""Who is writing: a platform account resolved to a person, their units and roles."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from bot.models import Community, CommunityMember, Identity, Person, Role, Unit

# What a Who is made of: a change to any of these tables makes every remembered Who suspect.
WHO_TABLES = frozenset({"people", "identities", "roles", "units", "community_members"})


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


def _who_query(by: str) -> Select[*tuple[Any, ...]]:
    """The person, each role, and the role's unit with its community membership, as rows,
    found by the person's key (the console: the account is the person id), by one platform
    account, or by several accounts of one platform (then each row starts with the account).

    Built once per form: constructing this statement costs more than running it.
    """
    columns = (
        Person.id,
        Person.key,
        Person.name,
        Role.role,
        Unit.id,
        Unit.key,
        Unit.name,
        Unit.short_name,
        Unit.active,
        CommunityMember.community_id,
        CommunityMember.is_lead,
    )
    if by == "key":
        stmt = select(*columns).where(Person.key == bindparam("user_id"))
    else:
        many = by == "accounts"
        stmt = select(*((Identity.user_id,) if many else ()), *columns)
        user = (
            Identity.user_id.in_(bindparam("user_ids", expanding=True))
            if many
            else Identity.user_id == bindparam("user_id")
        )
        stmt = stmt.join(Identity, Identity.person_id == Person.id).where(
            Identity.platform == bindparam("platform"), user
        )
    return (
        stmt.outerjoin(Role, Role.person_id == Person.id)
        .outerjoin(Unit, Unit.id == Role.unit_id)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .where(Person.active)
        .order_by(Unit.id)
    )


_BY_ACCOUNT, _BY_KEY, _BY_ACCOUNTS = (_who_query(by) for by in ("account", "key", "accounts"))


async def whois(session: AsyncSession, platform: str, user_id: str) -> Who | None:
    """The active person behind an account; on the console the account is the person id."""
    if platform == "console":
        result = await session.execute(_BY_KEY, {"user_id": user_id})
    else:
        result = await session.execute(_BY_ACCOUNT, {"platform": platform, "user_id": user_id})
    rows = result.all()
    return _who(rows) if rows else None


async def whois_many(session: AsyncSession, platform: str, user_ids: list[str]) -> dict[str, Who]:
    """`whois` for several accounts of one platform (not the console) in one query; the
    accounts of nobody active are left out."""
    rows: dict[str, list[Any]] = {}
    params = {"platform": platform, "user_ids": user_ids}
    for user_id, *row in await session.execute(_BY_ACCOUNTS, params):
        rows.setdefault(user_id, []).append(row)
    return {user_id: _who(found) for user_id, found in rows.items()}


def _who(rows: Sequence[Any]) -> Who:
    liaison: list[UnitRef] = []
    secretary: list[UnitRef] = []
    admin = False
    for *_, role, uid, ukey, uname, ushort, uactive, community, lead in rows:
        if role == "admin":
            admin = True
            continue
        if role is None or uid is None or not uactive:
            continue
        ref = UnitRef(uid, ukey, uname, ushort, community, bool(lead))
        (liaison if role == "liaison" else secretary).append(ref)
    pid, pkey, pname = rows[0][:3]
    return Who(pid, pkey, pname, admin, tuple(liaison), tuple(secretary))


class People:
    """`whois` remembered for a few seconds: someone who writes twice in a row (a check-in, then
    its photos) is looked up once.

    Two things keep it right. In this process, any flush or statement that writes to a table a
    Who is made of (config sync, an approved 申请绑定) forgets everything at once, and again
    when that transaction commits, so an answer read meanwhile from the old rows cannot
    outlive it. Another instance's or `duban config apply`'s changes cannot be seen that way,
    so nothing is kept longer than `ttl` seconds: that is how stale a role can be there. Only
    known people are kept; an unknown account is asked again each time, so a person bound a
    moment ago is recognised at once everywhere.
    """

    def __init__(
        self, ttl: float = 10.0, size: int = 10_000, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.size, self.now = ttl, size, now
        self._kept: OrderedDict[tuple[str, str], tuple[float, int, Who]] = OrderedDict()

    async def whois(self, session: AsyncSession, platform: str, user_id: str) -> Who | None:
        key = (platform, user_id)
        kept = self._kept.get(key)
        if kept is not None:
            until, generation, who = kept
            if until > self.now() and generation == _generation:
                return who
            del self._kept[key]
        generation = _generation  # as of the read: a change during it makes the entry stale
        found = await whois(session, platform, user_id)
        if found is not None:
            self._keep(key, generation, found)
        return found

    async def recall(self, session: AsyncSession, accounts: Iterable[tuple[str, str]]) -> None:
        """Look up, in one query per platform, the accounts not remembered now: messages
        handled together then find their writers here."""
        wanted: dict[str, list[str]] = {}
        for platform, user_id in accounts:
            kept = self._kept.get((platform, user_id))
            fresh = kept is not None and kept[0] > self.now() and kept[1] == _generation
            if not fresh and platform != "console":
                wanted.setdefault(platform, []).append(user_id)
        generation = _generation
        for platform, user_ids in wanted.items():
            found = await whois_many(session, platform, list(dict.fromkeys(user_ids)))
            for user_id, who in found.items():
                self._keep((platform, user_id), generation, who)

    def _keep(self, key: tuple[str, str], generation: int, who: Who) -> None:
        self._kept[key] = (self.now() + self.ttl, generation, who)
        self._kept.move_to_end(key)
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)


_generation = 0


def forget_everyone() -> None:
    """Every People cache in the process reads the database again (a Who table changed)."""
    global _generation
    _generation += 1


def _touches_who(session: Session) -> bool:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if getattr(obj, "__tablename__", None) in WHO_TABLES:
            return True
    return False


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    if _touches_who(session):
        session.info["who_changed"] = True
        forget_everyone()


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table: Any = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in WHO_TABLES:
        state.session.info["who_changed"] = True
        forget_everyone()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # Not cleared on a rollback: one forgetting too many costs a query, one too few a stale Who.
    if session.info.pop("who_changed", False):
        forget_everyone()


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
