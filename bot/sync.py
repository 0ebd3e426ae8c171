"""Brings the ledger in line with the deployment's configuration without losing history.

Rows are matched by their configuration id. A unit, community, person, group or task that left
the configuration is deactivated, never deleted, so its past instances and check-ins stay;
every difference is written to the audit log in the sync's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.deployment import Deployment
from bot.models import (
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

ACTOR = "config"
CHAT_PREFIX = "chat_"
M = TypeVar("M", Unit, Community, Person, ChatGroup, PlanTask, Area, DutyHolder)


@dataclass
class SyncReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, entity: str) -> None:
        bucket = getattr(self, kind)
        bucket[entity] = bucket.get(entity, 0) + 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def summary(self) -> str:
        parts = [
            f"{label} {entity} {n}"
            for label, bucket in (
                ("新增", self.created),
                ("更新", self.updated),
                ("停用", self.removed),
            )
            for entity, n in sorted(bucket.items())
        ]
        return "；".join(parts) or "无变化 (no changes)"


async def sync(session: AsyncSession, d: Deployment, now: datetime) -> SyncReport:
    rep = SyncReport()
    ctx = _Ctx(session, now, rep)
    # Groups bound by chat (绑定群) are keyed chat_…: the configuration never owns them, and a
    # community bound to one keeps it.
    bound = await _chat_bound(session)
    groups = await ctx.upsert(
        ChatGroup,
        "group",
        {
            g.id: {
                "name": g.name,
                "platform": g.platform,
                "chat_id": g.chat_id,
                "channel_type": g.channel.type,
                "channel": _channel_public(g.channel.model_dump()),
                "rate_per_minute": g.channel.rate_per_minute,
                "is_admin_group": g.id == d.committee.admin_group,
            }
            for g in d.groups
        },
        scope=~ChatGroup.key.startswith(CHAT_PREFIX),
    )
    units = await ctx.upsert(
        Unit, "unit", {u.id: {"name": u.name, "short_name": u.short} for u in d.units}
    )
    for u in d.units:  # parents second: a parent may come later in the file
        parent = units[u.parent].id if u.parent else None
        await ctx.set_fields(units[u.id], "unit", {"parent_id": parent})
    communities = await ctx.upsert(
        Community,
        "community",
        {
            c.id: {
                "name": c.name,
                "group_id": bound.get(c.id, groups[c.group].id if c.group else None),
            }
            for c in d.communities
        },
    )
    await _memberships(ctx, d, units, communities)
    # People approved by chat (申请绑定 → 批准) are keyed chat_…: the configuration never owns them.
    people = await ctx.upsert(
        Person,
        "person",
        {p.id: {"name": p.name, "mobile": p.mobile} for p in d.people},
        scope=~Person.key.startswith(CHAT_PREFIX),
    )
    await _identities(ctx, d, people)
    await _roles(ctx, d, people, units)
    await _responsibilities(ctx, d)
    await _tasks(ctx, d, units)
    if rep.changed:
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="config.sync",
            entity="config",
            key="*",
            detail=rep.summary(),
        )
    return rep


async def _chat_bound(session: AsyncSession) -> dict[str, int]:
    """Community key → its group, for communities an admin bound to a chat_… group."""
    rows = await session.execute(
        select(Community.key, ChatGroup.id)
        .join(ChatGroup, ChatGroup.id == Community.group_id)
        .where(ChatGroup.key.startswith(CHAT_PREFIX), ChatGroup.active)
    )
    return {key: group_id for key, group_id in rows.all()}


@dataclass
class _Ctx:
    session: AsyncSession
    now: datetime
    rep: SyncReport

    def audit(self, action: str, entity: str, key: str, before: Any, after: Any) -> None:
        audit.record(
            self.session,
            at=self.now,
            actor=ACTOR,
            action=action,
            entity=entity,
            key=key,
            before=before,
            after=after,
        )

    async def upsert(
        self,
        model: type[M],
        entity: str,
        desired: Mapping[str, dict[str, Any]],
        scope: Any = None,
    ) -> dict[str, M]:
        stmt = select(model) if scope is None else select(model).where(scope)
        rows: dict[str, M] = {r.key: r for r in (await self.session.scalars(stmt)).all()}
        stamps = {"created_at", "updated_at"} & set(model.__table__.columns.keys())
        for key, values in desired.items():
            row = rows.get(key)
            if row is None:
                extra = dict.fromkeys(stamps, self.now)
                row = model(key=key, **values, **extra)
                if hasattr(row, "active"):
                    row.active = True
                self.session.add(row)
                rows[key] = row
                self.rep.count("created", entity)
                self.audit(f"{entity}.create", entity, key, None, _jsonable(values))
                continue
            if getattr(row, "active", True) is False:
                values = {**values, "active": True, **_cleared(row)}
            await self.set_fields(row, entity, values)
        for key, row in rows.items():
            if key not in desired and getattr(row, "active", False):
                setattr(row, "active", False)  # noqa: B010 (Area and DutyHolder have no flag)
                for stamp in ("removed_at", "cancelled_at"):
                    if hasattr(row, stamp):
                        setattr(row, stamp, self.now)
                self.rep.count("removed", entity)
                self.audit(f"{entity}.remove", entity, key, {"active": True}, {"active": False})
        await self.session.flush()
        return {k: v for k, v in rows.items() if k in desired}

    async def set_fields(self, row: Any, entity: str, values: Mapping[str, Any]) -> None:
        before = {k: getattr(row, k) for k, v in values.items() if getattr(row, k) != v}
        if not before:
            return
        for k in before:
            setattr(row, k, values[k])
        if hasattr(row, "updated_at"):
            row.updated_at = self.now
        self.rep.count("updated", entity)
        after = {k: values[k] for k in before}
        self.audit(f"{entity}.update", entity, row.key, _jsonable(before), _jsonable(after))


def _cleared(row: Any) -> dict[str, Any]:
    return {s: None for s in ("removed_at", "cancelled_at") if hasattr(row, s)}


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _channel_public(channel: dict[str, Any]) -> dict[str, Any]:
    """The channel without secret values: only the names of the variables that hold them."""
    out: dict[str, Any] = {}
    for name, value in channel.items():
        if name in ("key", "access_token", "secret") and value is not None:
            out[name] = {"env": value["env"]} if isinstance(value, dict) else "<inline>"
        elif name != "type":
            out[name] = value
    return out


_CHUNK = 10_000


async def _replace(ctx: _Ctx, entity: str, key: str, before: Any, after: Any) -> bool:
    if before == after:
        return False
    ctx.rep.count("updated", entity)
    ctx.audit(f"{entity}.update", entity, key, {"value": before}, {"value": after})
    return True


async def _memberships(
    ctx: _Ctx, d: Deployment, units: dict[str, Unit], communities: dict[str, Community]
) -> None:
    by_id = {u.id: k for k, u in units.items()}
    cid = {c.id: k for k, c in communities.items()}
    rows = (await ctx.session.scalars(select(CommunityMember))).all()
    have = sorted(
        (cid.get(r.community_id, "?"), by_id.get(r.unit_id, "?"), r.is_lead) for r in rows
    )
    want = sorted((c.id, m, m == c.lead) for c in d.communities for m in dict.fromkeys(c.members))
    if not await _replace(ctx, "membership", "*", have, want):
        return
    await ctx.session.execute(delete(CommunityMember))
    ctx.session.add_all(
        CommunityMember(unit_id=units[m].id, community_id=communities[c].id, is_lead=lead)
        for c, m, lead in want
    )
    await ctx.session.flush()


async def _identities(ctx: _Ctx, d: Deployment, people: dict[str, Person]) -> None:
    pid = {p.id: k for k, p in people.items()}
    rows = (await ctx.session.scalars(select(Identity))).all()
    have = sorted(
        (pid.get(r.person_id, "?"), r.platform, r.user_id) for r in rows if r.person_id in pid
    )
    want = sorted(
        (p.id, platform, uid)
        for p in d.people
        for platform, uid in (("wecom", p.wecom), ("dingtalk", p.dingtalk))
        if uid
    )
    if not await _replace(ctx, "identity", "*", have, want):
        return
    ids = list(pid)
    for i in range(0, len(ids), _CHUNK):  # PostgreSQL binds at most 32,767 parameters
        await ctx.session.execute(
            delete(Identity).where(Identity.person_id.in_(ids[i : i + _CHUNK]))
        )
    await ctx.session.flush()
    ctx.session.add_all(
        Identity(person_id=people[k].id, platform=pf, user_id=u) for k, pf, u in want
    )
    await ctx.session.flush()


async def _roles(
    ctx: _Ctx, d: Deployment, people: dict[str, Person], units: dict[str, Unit]
) -> None:
    want_keys: set[tuple[str, str, str | None]] = {(a, "admin", None) for a in d.committee.admins}
    for u in d.units:
        if u.secretary:
            want_keys.add((u.secretary, "secretary", u.id))
        want_keys.update((p, "liaison", u.id) for p in u.liaisons)
    pkey = {p.id: k for k, p in people.items()}
    ukey = {u.id: k for k, u in units.items()}
    rows = (await ctx.session.scalars(select(Role).where(Role.source == "config"))).all()
    have = {
        (pkey.get(r.person_id, "?"), r.role, ukey.get(r.unit_id) if r.unit_id else None): r
        for r in rows
    }
    if not await _replace(ctx, "role", "*", sorted(map(str, have)), sorted(map(str, want_keys))):
        return
    for k, row in have.items():
        if k not in want_keys:
            await ctx.session.delete(row)
    await ctx.session.flush()
    ctx.session.add_all(
        Role(
            person_id=people[p].id,
            role=role,
            unit_id=units[u].id if u else None,
            source="config",
            created_at=ctx.now,
        )
        for p, role, u in want_keys - set(have)
    )
    await ctx.session.flush()


async def _responsibilities(ctx: _Ctx, d: Deployment) -> None:
    r = d.responsibilities
    holders = await ctx.upsert(
        DutyHolder,
        "holder",
        {h.id: {"name": h.name, "duty": h.duty, "position": i} for i, h in enumerate(r.holders)},
    )
    areas = await ctx.upsert(
        Area, "area", {a.id: {"name": a.name, "position": i} for i, a in enumerate(r.areas)}
    )
    want = [
        (a.id, h, i, text)
        for a in r.areas
        for h, duties in a.duties.items()
        for i, text in enumerate(duties)
    ]
    rows = (await ctx.session.scalars(select(Responsibility))).all()
    akey = {a.id: k for k, a in areas.items()}
    hkey = {h.id: k for k, h in holders.items()}
    have = sorted(
        (akey.get(x.area_id, "?"), hkey.get(x.holder_id, "?"), x.position, x.text) for x in rows
    )
    if not await _replace(ctx, "responsibility", "*", have, sorted(want)):
        return
    await ctx.session.execute(delete(Responsibility))
    ctx.session.add_all(
        Responsibility(area_id=areas[a].id, holder_id=holders[h].id, position=i, text=t)
        for a, h, i, t in want
    )
    await ctx.session.flush()


async def _tasks(ctx: _Ctx, d: Deployment, units: dict[str, Unit]) -> None:
    areas = {a.key: a.id for a in (await ctx.session.scalars(select(Area))).all()}
    holders = {h.key: h.id for h in (await ctx.session.scalars(select(DutyHolder))).all()}
    tasks = await ctx.upsert(
        PlanTask,
        "task",
        {
            t.id: {
                "title": t.title,
                "area_id": areas[t.area],
                "holder_id": holders[t.holder] if t.holder else None,
                "cadence": t.cadence,
                "due_rule": t.due,
                "owners": t.owners if isinstance(t.owners, str) else "named",
                "evidence": t.evidence,
                "note": t.note,
            }
            for t in d.tasks
        },
        scope=PlanTask.source == "config",
    )
    named = {(t.id, u) for t in d.tasks if isinstance(t.owners, list) for u in t.owners}
    ids = {t.id: k for k, t in tasks.items()}
    ukey = {u.id: k for k, u in units.items()}
    rows = (
        await ctx.session.scalars(select(PlanTaskUnit).where(PlanTaskUnit.task_id.in_(list(ids))))
    ).all()
    have = {(ids[r.task_id], ukey.get(r.unit_id, "?")) for r in rows}
    if not await _replace(ctx, "task_owners", "*", sorted(have), sorted(named)):
        return
    await ctx.session.execute(delete(PlanTaskUnit).where(PlanTaskUnit.task_id.in_(list(ids))))
    ctx.session.add_all(PlanTaskUnit(task_id=tasks[t].id, unit_id=units[u].id) for t, u in named)
    await ctx.session.flush()
