"""Brings the ledger in line with the deployment's configuration without losing history.

Rows are matched by their configuration id. A unit, community, person, group or task that left
the configuration is deactivated, never deleted, so its past instances and check-ins stay;
every difference is written to the audit log in the sync's transaction (bot/sync_audit.py).
Tables are read, compared and written as sets (bot/sync_rows.py): a province's 200,000 people
take seconds, not minutes.

`sync_plan` is the part that admins can change by chat too (任务修改, 任务取消): a start with a
configuration unchanged since its last apply brings back only that (bot/startup.py). Which
configuration was last applied in full is kept in `app_keys` as a mark: any full sync erases
it first, and only `mark_applied`, after a full sync of those very files, writes it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.deployment import Deployment
from bot.models import (
    AppKey,
    Area,
    ChatGroup,
    Community,
    CommunityMember,
    DutyHolder,
    Identity,
    Person,
    PlanTask,
    PlanTaskUnit,
    Responsibility,
    Role,
    Unit,
)
from bot.sync_audit import ACTOR, SyncReport
from bot.sync_rows import CHUNK, IdSet, Keyed, Links, Writer

__all__ = [
    "ACTOR",
    "CHAT_PREFIX",
    "CHUNK",
    "SyncReport",
    "applied_mark",
    "last_applied",
    "mark_applied",
    "sync",
    "sync_plan",
]

CHAT_PREFIX = "chat_"
APPLIED = "config_applied"  # the app_keys row naming the configuration last applied in full
# Part of the mark: a release whose sync writes something new from the same files raises it,
# so that its first start applies the configuration in full again.
SYNC_FORMAT = 2


def _t(model: Any) -> Table:
    return cast(Table, model.__table__)


# Groups bound by chat (绑定群) and people approved by chat (申请绑定 → 批准) are keyed chat_…:
# the configuration never owns them.
GROUPS = Keyed(
    _t(ChatGroup),
    "group",
    ("name", "platform", "chat_id", "channel_type", "channel", "rate_per_minute", "is_admin_group"),
    scope=~ChatGroup.key.startswith(CHAT_PREFIX),
)
UNITS = Keyed(_t(Unit), "unit", ("name", "short_name"))
COMMUNITIES = Keyed(_t(Community), "community", ("name", "group_id"))
PEOPLE = Keyed(_t(Person), "person", ("name", "mobile"), scope=~Person.key.startswith(CHAT_PREFIX))
HOLDERS = Keyed(_t(DutyHolder), "holder", ("name", "duty", "position"))
AREAS = Keyed(_t(Area), "area", ("name", "position"))
TASKS = Keyed(
    _t(PlanTask),
    "task",
    ("title", "area_id", "holder_id", "cadence", "due_rule", "owners", "evidence", "note"),
    scope=PlanTask.source == "config",
    constant={"source": "config"},
)
MEMBERS = Links(
    _t(CommunityMember), "membership", ("community_id", "unit_id", "is_lead"), ("unit_id",)
)
IDENTITIES = Links(_t(Identity), "identity", ("person_id", "platform", "user_id"))
RESPONSIBILITIES = Links(
    _t(Responsibility), "responsibility", ("area_id", "holder_id", "position", "text")
)
OWNERS = Links(_t(PlanTaskUnit), "task_owners", ("task_id", "unit_id"), ("task_id", "unit_id"))


async def sync(
    session: AsyncSession, d: Deployment, now: datetime, *, chunk: int = CHUNK
) -> SyncReport:
    """Everything; `chunk` is the most ids one statement carries."""
    await session.execute(delete(AppKey).where(AppKey.name == APPLIED))
    w = Writer(session, now, SyncReport(), chunk)
    # A community an admin bound to a chat_… group keeps it.
    bound = await _chat_bound(session)
    admin_group = d.committee.admin_group
    groups = await w.upsert(
        GROUPS,
        {
            g.id: (
                g.name,
                g.platform,
                g.chat_id,
                g.channel.type,
                _channel_public(g.channel.model_dump()),
                g.channel.rate_per_minute,
                g.id == admin_group,
            )
            for g in d.groups
        },
    )
    units = await w.upsert(UNITS, {u.id: (u.name, u.short) for u in d.units})
    # Parents second: a parent may come later in the file, and needs its id.
    parents = {u.id: units[u.parent] if u.parent else None for u in d.units}
    await w.set_column(UNITS, "parent_id", parents, units)
    communities = await w.upsert(
        COMMUNITIES,
        {
            c.id: (c.name, bound.get(c.id, groups[c.group] if c.group else None))
            for c in d.communities
        },
    )
    want = {
        (communities[c.id], units[m], m == c.lead)
        for c in d.communities
        for m in dict.fromkeys(c.members)
    }
    unit_keys = await _all_keys(session, Unit)
    await w.replace(
        MEMBERS, want, _t(Community), lambda link: [unit_keys.get(link[1], "?"), link[2]]
    )
    people = await w.upsert(PEOPLE, {p.id: (p.name, p.mobile) for p in d.people})
    await _identities(w, d, people)
    await _roles(w, d, people, units, unit_keys)
    await _responsibilities(w, d)
    await _plan(w, d, units, unit_keys)
    return _summed(w)


async def sync_plan(
    session: AsyncSession, d: Deployment, now: datetime, *, chunk: int = CHUNK
) -> SyncReport:
    """The annual plan's configured tasks and their named units, nothing else."""
    w = Writer(session, now, SyncReport(), chunk)
    unit_keys = await _all_keys(session, Unit)
    units = {key: i for i, key in unit_keys.items()}
    await _plan(w, d, units, unit_keys)
    return _summed(w)


def applied_mark(digest: str, schema_revision: str) -> str:
    """What `app_keys` keeps for a configuration applied in full: its files' digest, with the
    schema and the sync that wrote it (either changing means applying again)."""
    return hashlib.sha256(f"{SYNC_FORMAT}\n{schema_revision}\n{digest}".encode()).hexdigest()


async def last_applied(session: AsyncSession) -> str | None:
    return await session.scalar(select(AppKey.value).where(AppKey.name == APPLIED))


async def mark_applied(session: AsyncSession, mark: str, now: datetime) -> None:
    """After `sync` in the same transaction: the ledger is now this configuration's."""
    dialect = session.get_bind().dialect.name
    insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(AppKey)
    stmt = insert.values(name=APPLIED, value=mark, created_at=now)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"value": mark, "created_at": now})
    )


def _summed(w: Writer) -> SyncReport:
    if w.report.changed:
        audit.record(
            w.session,
            at=w.now,
            actor=ACTOR,
            action="config.sync",
            entity="config",
            key="*",
            detail=w.report.summary(),
        )
    return w.report


async def _chat_bound(session: AsyncSession) -> dict[str, int]:
    """Community key → its group, for communities an admin bound to a chat_… group."""
    rows = await session.execute(
        select(Community.key, ChatGroup.id)
        .join(ChatGroup, ChatGroup.id == Community.group_id)
        .where(ChatGroup.key.startswith(CHAT_PREFIX), ChatGroup.active)
    )
    return {key: group_id for key, group_id in rows.all()}


async def _all_keys(session: AsyncSession, model: Any) -> dict[int, str]:
    """id → key of every row, gone ones too (the audit names what was unlinked)."""
    t = _t(model)
    return {i: key for i, key in await session.execute(select(t.c.id, t.c.key))}


def _channel_public(channel: dict[str, Any]) -> dict[str, Any]:
    """The channel without secret values: only the names of the variables that hold them."""
    out: dict[str, Any] = {}
    for name, value in channel.items():
        if name in ("key", "access_token", "secret") and value is not None:
            out[name] = {"env": value["env"]} if isinstance(value, dict) else "<inline>"
        elif name != "type":
            out[name] = value
    return out


async def _identities(w: Writer, d: Deployment, people: dict[str, int]) -> None:
    want = {
        (people[p.id], platform, uid)
        for p in d.people
        for platform, uid in (("wecom", p.wecom), ("dingtalk", p.dingtalk))
        if uid
    }
    # Accounts of people who left the configuration, or were approved by chat, stay as they are.
    mine = IdSet(people.values())
    describe = lambda link: [link[1], link[2]]  # noqa: E731
    await w.replace(IDENTITIES, want, _t(Person), describe, lambda link: link[0] in mine)


async def _roles(
    w: Writer,
    d: Deployment,
    people: dict[str, int],
    units: dict[str, int],
    unit_keys: dict[int, str],
) -> None:
    want: set[tuple[int, str, int | None]] = {
        (people[a], "admin", None) for a in d.committee.admins
    }
    for u in d.units:
        if u.secretary:
            want.add((people[u.secretary], "secretary", units[u.id]))
        want.update((people[p], "liaison", units[u.id]) for p in u.liaisons)
    # Roles granted by chat (source "chat") are the admins' to take back, not the sync's.
    spec = Links(
        _t(Role),
        "role",
        ("person_id", "role", "unit_id"),
        scope=Role.source == "config",
        constant={"source": "config", "created_at": w.now},
    )
    describe = lambda link: [link[1], unit_keys.get(link[2]) if link[2] else None]  # noqa: E731
    await w.replace(spec, want, _t(Person), describe)


async def _responsibilities(w: Writer, d: Deployment) -> None:
    r = d.responsibilities
    holders = await w.upsert(HOLDERS, {h.id: (h.name, h.duty, i) for i, h in enumerate(r.holders)})
    areas = await w.upsert(AREAS, {a.id: (a.name, i) for i, a in enumerate(r.areas)})
    want = {
        (areas[a.id], holders[h], i, text)
        for a in r.areas
        for h, duties in a.duties.items()
        for i, text in enumerate(duties)
    }
    holder_keys = await _all_keys(w.session, DutyHolder)
    describe = lambda link: [holder_keys.get(link[1], "?"), link[2], link[3]]  # noqa: E731
    await w.replace(RESPONSIBILITIES, want, _t(Area), describe)


async def _plan(w: Writer, d: Deployment, units: dict[str, int], unit_keys: dict[int, str]) -> None:
    areas = {k: i for k, i in await w.session.execute(select(Area.key, Area.id))}
    holders = {k: i for k, i in await w.session.execute(select(DutyHolder.key, DutyHolder.id))}
    tasks = await w.upsert(
        TASKS,
        {
            t.id: (
                t.title,
                areas[t.area],
                holders[t.holder] if t.holder else None,
                t.cadence,
                t.due,
                t.owners if isinstance(t.owners, str) else "named",
                t.evidence,
                t.note,
            )
            for t in d.tasks
        },
    )
    want = {
        (tasks[t.id], units[u]) for t in d.tasks if isinstance(t.owners, list) for u in t.owners
    }
    # Tasks added by chat name their units too; those are not the configuration's.
    mine = set(tasks.values())
    await w.replace(
        OWNERS,
        want,
        _t(PlanTask),
        lambda link: unit_keys.get(link[1], "?"),
        lambda link: link[0] in mine,
    )
