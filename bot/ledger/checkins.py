"""Check-ins: recording, updating and withdrawing reports, and attaching evidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot import audit
from bot.ledger.instances import Listed
from bot.messages import Media
from bot.models import Attachment, CheckIn, PlanTask, TaskInstance

# Photos sent shortly after a check-in belong to it (people send text first, then pictures).
ATTACH_WINDOW = timedelta(minutes=10)
CLOSED = ("accepted", "excused")


@dataclass(frozen=True, slots=True)
class Recorded:
    instance: TaskInstance
    checkin: CheckIn
    updated: bool  # an earlier report was updated rather than a new one made
    late: bool


@dataclass(frozen=True, slots=True)
class Numbered:
    """An instance found by its number, with the report it holds now (None: none yet)."""

    found: Listed
    current: CheckIn | None


class _Look:
    """`record`/`withdraw` read the current report themselves (the caller did not)."""


LOOK = _Look()

# Built once: constructing a statement costs more than running it on a message's hot path.
_LATEST = (
    select(CheckIn)
    .where(CheckIn.instance_id == bindparam("instance_id"), CheckIn.status != "withdrawn")
    .order_by(CheckIn.id.desc())
    .limit(1)
)
_Later = aliased(CheckIn)
_NUMBERED = (
    select(TaskInstance, PlanTask, CheckIn)
    .join(PlanTask, PlanTask.id == TaskInstance.task_id)
    .outerjoin(
        CheckIn,
        CheckIn.id
        == select(func.max(_Later.id))
        .where(_Later.instance_id == TaskInstance.id, _Later.status != "withdrawn")
        .correlate(TaskInstance)
        .scalar_subquery(),
    )
    .where(
        TaskInstance.unit_id.in_(bindparam("units", expanding=True)),
        TaskInstance.no == bindparam("no"),
    )
)


async def numbered(session: AsyncSession, unit_ids: Sequence[int], no: int) -> Numbered | None:
    """The instance numbered `no` of the first of `unit_ids` that has one, and its current
    report, in one query (numbers are per unit)."""
    if not unit_ids:
        return None
    rows = (await session.execute(_NUMBERED, {"units": list(unit_ids), "no": no})).all()
    by_unit = {instance.unit_id: (instance, task, current) for instance, task, current in rows}
    for unit_id in unit_ids:
        if unit_id in by_unit:
            instance, task, current = by_unit[unit_id]
            return Numbered(Listed(instance, task), current)
    return None


class CheckInRefused(Exception):
    """The instance cannot take a report: `reason` is accepted or excused."""

    def __init__(self, instance: TaskInstance, reason: str) -> None:
        super().__init__(reason)
        self.instance = instance
        self.reason = reason


async def record(
    session: AsyncSession,
    instance: TaskInstance,
    *,
    reporter_id: int,
    for_unit_id: int,
    on_behalf: bool,
    text: str,
    media: tuple[Media, ...],
    platform: str,
    msg_id: str,
    now: datetime,
    actor: str,
    current: CheckIn | _Look | None = LOOK,
) -> Recorded:
    """Record a report, or update the one awaiting review. `current` is the instance's
    latest report when the caller has read it already (see `numbered`)."""
    if instance.status in CLOSED:
        raise CheckInRefused(instance, instance.status)
    late = now > instance.due_at
    if isinstance(current, _Look):
        current = await latest(session, instance.id)
    before = {"status": instance.status}
    if current is not None and current.status in ("submitted", "returned"):
        current.text, current.status, current.updated_at = text, "submitted", now
        current.late, current.reporter_id, current.on_behalf = late, reporter_id, on_behalf
        checkin, updated = current, True
    else:
        checkin = CheckIn(
            instance_id=instance.id,
            reporter_id=reporter_id,
            for_unit_id=for_unit_id,
            on_behalf=on_behalf,
            text=text,
            late=late,
            status="submitted",
            platform=platform,
            platform_msg_id=f"{msg_id}#{instance.id}",
            submitted_at=now,
            updated_at=now,
        )
        session.add(checkin)
        updated = False
    if media:  # the attachments need the check-in's id; otherwise one flush at commit will do
        await session.flush()
        add_media(session, checkin, media, platform, now)
    instance.status, instance.updated_at = "submitted", now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="checkin.update" if updated else "checkin.create",
        entity="instance",
        key=str(instance.id),
        before=before,
        after={"status": "submitted", "late": late, "on_behalf": on_behalf, "text": text[:200]},
    )
    return Recorded(instance, checkin, updated, late)


def add_media(
    session: AsyncSession, checkin: CheckIn, media: tuple[Media, ...], platform: str, now: datetime
) -> None:
    for m in media:
        session.add(
            Attachment(
                checkin_id=checkin.id, kind=m.kind, ref=m.ref, platform=platform, received_at=now
            )
        )


async def latest(session: AsyncSession, instance_id: int) -> CheckIn | None:
    return await session.scalar(_LATEST, {"instance_id": instance_id})


async def recent_by(session: AsyncSession, reporter_id: int, now: datetime) -> list[CheckIn]:
    """The reporter's check-ins of the last ATTACH_WINDOW, newest first."""
    return list(
        (
            await session.scalars(
                select(CheckIn)
                .where(
                    CheckIn.reporter_id == reporter_id,
                    CheckIn.updated_at >= now - ATTACH_WINDOW,
                    CheckIn.status == "submitted",
                )
                .order_by(CheckIn.updated_at.desc(), CheckIn.id.desc())
            )
        ).all()
    )


async def withdraw(
    session: AsyncSession,
    instance: TaskInstance,
    *,
    now: datetime,
    actor: str,
    current: CheckIn | _Look | None = LOOK,
) -> CheckIn | None:
    """Withdraw the unit's report while it awaits review; None when there is none to withdraw."""
    if isinstance(current, _Look):
        current = await latest(session, instance.id)
    if current is None or current.status != "submitted":
        return None
    current.status, current.updated_at = "withdrawn", now
    instance.status = "overdue" if now > instance.due_at else "pending"
    instance.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="checkin.withdraw",
        entity="instance",
        key=str(instance.id),
        before={"status": "submitted"},
        after={"status": instance.status},
    )
    return current
