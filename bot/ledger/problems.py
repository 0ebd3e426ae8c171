"""Problems, the worker's side: the open problems of units, and rectification reports with
their evidence. Opening and closing problems is the committee's (bot.ledger.problem_admin)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.clock import SHANGHAI
from bot.ledger.checkins import ATTACH_WINDOW
from bot.ledger.idlists import among
from bot.ledger.people import UnitRef, unit_ref
from bot.messages import Media
from bot.models import Attachment, CommunityMember, Problem, Rectification, Unit

Refusal = Literal["missing", "closed", "foreign"]


@dataclass(frozen=True, slots=True)
class OpenProblem:
    problem: Problem
    unit: UnitRef
    latest: Rectification | None  # the most recent progress report, if any

    def days_left(self, today: date) -> int:
        """Calendar days until the deadline day; negative once it has passed."""
        return (self.problem.deadline.astimezone(SHANGHAI).date() - today).days


async def open_problems(
    session: AsyncSession, unit_ids: Collection[int] | None
) -> list[OpenProblem]:
    """Open problems of the units (all units when None), soonest deadline first."""
    latest = (
        select(Rectification.problem_id, func.max(Rectification.id).label("last_id"))
        .group_by(Rectification.problem_id)
        .subquery()
    )
    stmt = (
        select(Problem, Unit, CommunityMember, Rectification)
        .join(Unit, Unit.id == Problem.unit_id)
        .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
        .outerjoin(latest, latest.c.problem_id == Problem.id)
        .outerjoin(Rectification, Rectification.id == latest.c.last_id)
        .where(Problem.status == "open")
        .order_by(Problem.deadline, Problem.id)
    )
    if unit_ids is not None:
        stmt = stmt.where(among(session, Problem.unit_id, unit_ids))
    rows = await session.execute(stmt)
    return [OpenProblem(p, unit_ref(u, m), r) for p, u, m, r in rows]


class RectificationRefused(Exception):
    """The report cannot be taken: no such problem, closed, or another unit's."""

    def __init__(self, reason: Refusal, problem: Problem | None, unit: UnitRef | None) -> None:
        super().__init__(reason)
        self.reason, self.problem, self.unit = reason, problem, unit


@dataclass(frozen=True, slots=True)
class Rectified:
    problem: Problem
    unit: UnitRef
    rectification: Rectification
    photos: int


async def rectify(
    session: AsyncSession,
    problem_id: int,
    *,
    unit_ids: Collection[int] | None,
    reporter_id: int,
    text: str,
    media: tuple[Media, ...],
    platform: str,
    now: datetime,
    actor: str,
) -> Rectified:
    """Record progress on an open problem of one of `unit_ids` (any unit when None)."""
    row = (
        await session.execute(
            select(Problem, Unit, CommunityMember)
            .join(Unit, Unit.id == Problem.unit_id)
            .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
            .where(Problem.id == problem_id)
        )
    ).first()
    if row is None:
        raise RectificationRefused("missing", None, None)
    problem, unit = row[0], unit_ref(row[1], row[2])
    if unit_ids is not None and problem.unit_id not in unit_ids:
        raise RectificationRefused("foreign", problem, unit)
    if problem.status != "open":
        raise RectificationRefused("closed", problem, unit)
    count = await session.scalar(select(func.count()).where(Rectification.problem_id == problem.id))
    rectification = Rectification(problem_id=problem.id, reporter_id=reporter_id, text=text, at=now)
    session.add(rectification)
    await session.flush()
    _add_media(session, rectification, media, platform, now)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="problem.rectify",
        entity="problem",
        key=str(problem.id),
        before={"reports": count or 0},
        after={
            "reports": (count or 0) + 1,
            "rectification": rectification.id,
            "text": text[:200],
            "photos": len(media),
        },
    )
    return Rectified(problem, unit, rectification, len(media))


async def recent_rectification_by(
    session: AsyncSession, reporter_id: int, now: datetime
) -> Rectification | None:
    """The reporter's latest rectification report of the last ATTACH_WINDOW, if any."""
    return await session.scalar(
        select(Rectification)
        .join(Problem, Problem.id == Rectification.problem_id)
        .where(
            Rectification.reporter_id == reporter_id,
            Rectification.at >= now - ATTACH_WINDOW,
            Problem.status == "open",
        )
        .order_by(Rectification.at.desc(), Rectification.id.desc())
        .limit(1)
    )


def attach(
    session: AsyncSession,
    rectification: Rectification,
    media: tuple[Media, ...],
    *,
    platform: str,
    now: datetime,
    actor: str,
) -> None:
    """Photos sent after a rectification report become its evidence."""
    _add_media(session, rectification, media, platform, now)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="problem.attach",
        entity="problem",
        key=str(rectification.problem_id),
        after={"rectification": rectification.id, "photos": len(media)},
    )


def _add_media(
    session: AsyncSession,
    rectification: Rectification,
    media: tuple[Media, ...],
    platform: str,
    now: datetime,
) -> None:
    for m in media:
        session.add(
            Attachment(
                rectification_id=rectification.id,
                kind=m.kind,
                ref=m.ref,
                platform=platform,
                received_at=now,
            )
        )
