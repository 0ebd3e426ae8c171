"""The working committee's verdicts on reports: the review queue, accept, return, excuse; and
who in a unit's community group hears about them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.ledger.idlists import among
from bot.messages import Mention
from bot.models import (
    Attachment,
    ChatGroup,
    CheckIn,
    Community,
    CommunityMember,
    Identity,
    Person,
    PlanTask,
    Review,
    Role,
    TaskInstance,
    Unit,
)

DECISIONS = {"accept": ("accepted", "accepted"), "return": ("returned", "returned")}


@dataclass(frozen=True, slots=True)
class Queued:
    """A report awaiting review, with what the list shows about it."""

    checkin: CheckIn
    instance: TaskInstance
    task: PlanTask
    unit: Unit
    evidence: int


async def queue(
    session: AsyncSession, unit_ids: Sequence[int] | None, limit: int
) -> tuple[list[Queued], int]:
    """The oldest `limit` reports awaiting review (of `unit_ids`, or all) and how many there are.

    A report whose instance was excused meanwhile needs no verdict, so it is left out."""
    where = [CheckIn.status == "submitted", TaskInstance.status != "excused"]
    if unit_ids is not None:
        where.append(among(session, TaskInstance.unit_id, unit_ids))
    base = (
        select(CheckIn, TaskInstance, PlanTask, Unit)
        .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
        .join(PlanTask, PlanTask.id == TaskInstance.task_id)
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(*where)
    )
    total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = (await session.execute(base.order_by(CheckIn.updated_at, CheckIn.id).limit(limit))).all()
    ids = [c.id for c, *_ in rows]
    counts = dict(
        (
            await session.execute(
                select(Attachment.checkin_id, func.count())
                .where(Attachment.checkin_id.in_(ids))
                .group_by(Attachment.checkin_id)
            )
        ).all()
    )
    return [Queued(c, i, t, u, counts.get(c.id, 0)) for c, i, t, u in rows], total


class Refused(Exception):
    """A verdict that cannot be given: `reason` is unknown, withdrawn, excused, accepted or
    returned (the last two with who reviewed it and when)."""

    def __init__(self, subject: int, reason: str, by: str = "", at: datetime | None = None) -> None:
        super().__init__(reason)
        self.subject, self.reason, self.by, self.at = subject, reason, by, at


@dataclass(frozen=True, slots=True)
class Reviewed:
    checkin: CheckIn
    instance: TaskInstance
    task: PlanTask
    unit: Unit
    decision: str
    reason: str


async def decide(
    session: AsyncSession,
    checkin_id: int,
    *,
    decision: str,
    reason: str,
    reviewer_id: int,
    now: datetime,
    actor: str,
) -> Reviewed:
    """Accept or return a report awaiting review; raises Refused otherwise."""
    row = (
        await session.execute(
            select(CheckIn, TaskInstance, PlanTask, Unit)
            .join(TaskInstance, TaskInstance.id == CheckIn.instance_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .where(CheckIn.id == checkin_id)
        )
    ).first()
    if row is None:
        raise Refused(checkin_id, "unknown")
    checkin, instance, task, unit = row
    if checkin.status in ("accepted", "returned"):
        last = (
            await session.execute(
                select(Review.at, Person.name)
                .join(Person, Person.id == Review.reviewer_id)
                .where(Review.checkin_id == checkin.id)
                .order_by(Review.id.desc())
                .limit(1)
            )
        ).first()
        raise Refused(
            checkin_id, checkin.status, last[1] if last else "", last[0] if last else None
        )
    if checkin.status != "submitted":
        raise Refused(checkin_id, checkin.status)
    if instance.status == "excused":
        raise Refused(checkin_id, "excused")
    before = {"checkin": checkin.status, "instance": instance.status}
    checkin.status, instance.status = DECISIONS[decision]
    instance.updated_at = now
    session.add(
        Review(
            checkin_id=checkin.id,
            reviewer_id=reviewer_id,
            decision=decision,
            reason=reason,
            at=now,
        )
    )
    audit.record(
        session,
        at=now,
        actor=actor,
        action=f"review.{decision}",
        entity="checkin",
        key=str(checkin.id),
        before=before,
        after={"checkin": checkin.status, "instance": instance.status, "reason": reason[:200]},
    )
    return Reviewed(checkin, instance, task, unit, decision, reason)


async def excuse(
    session: AsyncSession, instance: TaskInstance, *, reason: str, now: datetime, actor: str
) -> None:
    """Release a unit from one instance (免报); raises Refused when accepted or excused."""
    if instance.status in ("accepted", "excused"):
        raise Refused(instance.id, instance.status)
    before = {"status": instance.status, "excused_reason": instance.excused_reason}
    instance.status, instance.excused_reason, instance.updated_at = "excused", reason, now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="instance.excuse",
        entity="instance",
        key=str(instance.id),
        before=before,
        after={"status": "excused", "excused_reason": reason[:200]},
    )


async def matching_communities(session: AsyncSession, text: str) -> list[tuple[str, list[int]]]:
    """Communities whose name or id contains `text`, each with its active units."""
    text = text.strip()
    rows = (
        await session.execute(
            select(Community.name, CommunityMember.unit_id)
            .join(CommunityMember, CommunityMember.community_id == Community.id)
            .join(Unit, Unit.id == CommunityMember.unit_id)
            .where(
                Community.active,
                Unit.active,
                or_(Community.name.contains(text), Community.key == text),
            )
            .order_by(Community.id, CommunityMember.unit_id)
        )
    ).all()
    found: dict[str, list[int]] = {}
    for name, unit_id in rows:
        found.setdefault(name, []).append(unit_id)
    return list(found.items())


async def unit_group(session: AsyncSession, unit_id: int) -> ChatGroup | None:
    """The active chat group of the unit's community, where notices about the unit go."""
    return await session.scalar(
        select(ChatGroup)
        .join(Community, Community.group_id == ChatGroup.id)
        .join(CommunityMember, CommunityMember.community_id == Community.id)
        .where(CommunityMember.unit_id == unit_id, Community.active, ChatGroup.active)
    )


async def unit_mentions(
    session: AsyncSession, unit_id: int, platform: str, *, secretary: bool = False
) -> list[Mention]:
    """The unit's liaisons (and its secretary), as @-mentions on `platform`."""
    roles = ["liaison", "secretary"] if secretary else ["liaison"]
    rows = (
        await session.execute(
            select(Person.name, Person.mobile, Identity.user_id)
            .join(Role, Role.person_id == Person.id)
            .outerjoin(
                Identity, (Identity.person_id == Person.id) & (Identity.platform == platform)
            )
            .where(Role.unit_id == unit_id, Role.role.in_(roles), Person.active)
            .order_by(Role.role, Person.id)
        )
    ).all()
    seen: dict[tuple[str, str | None], Mention] = {}
    for name, mobile, user_id in rows:
        seen.setdefault((name, user_id), Mention(name, user_id=user_id, mobile=mobile))
    return list(seen.values())
