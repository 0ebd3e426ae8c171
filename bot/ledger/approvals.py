"""Deciding bind requests (申请绑定): an approved request makes its sender a unit's liaison.

People and roles created here are marked as the chat's (key chat_<platform>_<user id>, role
source "chat"), so re-applying the configuration does not take them away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.models import BindRequest, Identity, Person, Role, Unit


class Refused(Exception):
    """`reason` is unknown, approved or rejected (with who decided and when)."""

    def __init__(
        self, request_id: int, reason: str, by: str = "", at: datetime | None = None
    ) -> None:
        super().__init__(reason)
        self.request_id, self.reason, self.by, self.at = request_id, reason, by, at


@dataclass(frozen=True, slots=True)
class Request:
    request: BindRequest
    unit: Unit


async def pending(session: AsyncSession) -> list[Request]:
    rows = (
        await session.execute(
            select(BindRequest, Unit)
            .join(Unit, Unit.id == BindRequest.unit_id)
            .where(BindRequest.status == "pending")
            .order_by(BindRequest.requested_at, BindRequest.id)
        )
    ).all()
    return [Request(r, u) for r, u in rows]


async def open_request(session: AsyncSession, request_id: int) -> Request:
    """The pending request; raises Refused when there is none or it was decided."""
    row = (
        await session.execute(
            select(BindRequest, Unit)
            .join(Unit, Unit.id == BindRequest.unit_id)
            .where(BindRequest.id == request_id)
        )
    ).first()
    if row is None:
        raise Refused(request_id, "unknown")
    request, unit = row
    if request.status != "pending":
        by = (
            await session.scalar(select(Person.name).where(Person.id == request.decided_by))
            if request.decided_by
            else None
        )
        raise Refused(request_id, request.status, by or "", request.decided_at)
    return Request(request, unit)


@dataclass(frozen=True, slots=True)
class Approved:
    person: Person
    new_person: bool
    new_role: bool


def person_key(platform: str, user_id: str) -> str:
    return f"chat_{platform}_{re.sub(r'[^A-Za-z0-9_]', '_', user_id)}"[:64]


async def approve(
    session: AsyncSession, found: Request, *, admin_id: int, now: datetime, actor: str
) -> Approved:
    request = found.request
    person = await session.scalar(
        select(Person)
        .join(Identity, Identity.person_id == Person.id)
        .where(Identity.platform == request.platform, Identity.user_id == request.user_id)
    )
    new_person = person is None
    if person is None:
        person = await _new_person(session, request, now)
    elif not person.active:
        person.active, person.updated_at = True, now
    role = await session.scalar(
        select(Role).where(
            Role.person_id == person.id, Role.role == "liaison", Role.unit_id == found.unit.id
        )
    )
    if role is None:
        session.add(
            Role(
                person_id=person.id,
                role="liaison",
                unit_id=found.unit.id,
                source="chat",
                created_at=now,
            )
        )
    request.status, request.decided_by, request.decided_at = "approved", admin_id, now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="bind.approve",
        entity="bind_request",
        key=str(request.id),
        before={"status": "pending"},
        after={
            "status": "approved",
            "person": person.key,
            "new_person": new_person,
            "unit": found.unit.key,
            "new_role": role is None,
        },
    )
    return Approved(person, new_person, role is None)


async def _new_person(session: AsyncSession, request: BindRequest, now: datetime) -> Person:
    base = person_key(request.platform, request.user_id)
    key, n = base, 1
    # Two user ids may sanitise alike (a.b and a_b): the second gets a suffix.
    while await session.scalar(select(Person.id).where(Person.key == key)) is not None:
        n += 1
        key = f"{base[:60]}_{n}"
    person = Person(key=key, name=request.name, active=True, created_at=now, updated_at=now)
    session.add(person)
    await session.flush()
    session.add(Identity(person_id=person.id, platform=request.platform, user_id=request.user_id))
    await session.flush()
    return person


async def reject(
    session: AsyncSession,
    found: Request,
    *,
    admin_id: int,
    reason: str,
    now: datetime,
    actor: str,
) -> None:
    request = found.request
    request.status, request.decided_by, request.decided_at = "rejected", admin_id, now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="bind.reject",
        entity="bind_request",
        key=str(request.id),
        before={"status": "pending"},
        after={"status": "rejected", "reason": reason[:200]},
        detail=reason[:500],
    )
