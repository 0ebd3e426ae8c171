"""发布: an admin's approval of a period's report; only then do rankings reach community groups.

Each (kind, period) is approved once, by whoever claims it first, even across instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.db import claim
from bot.models import Person, ReportPublication


@dataclass(frozen=True, slots=True)
class Publication:
    kind: str
    period: str
    approved_by: str  # the approver's name; empty when the person is gone
    approved_at: datetime


class AlreadyPublished(Exception):
    def __init__(self, publication: Publication) -> None:
        super().__init__(f"{publication.kind} {publication.period}")
        self.publication = publication


async def find(session: AsyncSession, kind: str, period: str) -> Publication | None:
    row = (
        await session.execute(
            select(ReportPublication.approved_at, Person.name)
            .outerjoin(Person, Person.id == ReportPublication.approved_by)
            .where(ReportPublication.kind == kind, ReportPublication.period == period)
        )
    ).first()
    return None if row is None else Publication(kind, period, row[1] or "", row[0])


async def publish(
    session: AsyncSession,
    kind: str,
    period: str,
    *,
    approved_by: int,
    now: datetime,
    actor: str,
) -> None:
    """Record the approval; raises AlreadyPublished when someone approved it before."""
    values = {"kind": kind, "period": period, "approved_by": approved_by, "approved_at": now}
    if not await claim(session, ReportPublication.__table__, values):
        earlier = await find(session, kind, period)
        assert earlier is not None  # the unique key that refused the insert is there
        raise AlreadyPublished(earlier)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="report.publish",
        entity="report",
        key=f"{kind}:{period}",
        after={"kind": kind, "period": period, "approved_by": approved_by},
    )
