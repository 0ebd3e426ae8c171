"""Problems as the working committee records and closes them (问题新增, 整改销号)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.models import Problem, Unit

# The 回头看 job looks at a closed problem again this long after closing, to see it stays fixed.
RECHECK_AFTER = timedelta(days=30)


class Refused(Exception):
    """`reason` is unknown or closed."""

    def __init__(self, problem_id: int, reason: str, closed_at: datetime | None = None) -> None:
        super().__init__(reason)
        self.problem_id, self.reason, self.closed_at = problem_id, reason, closed_at


async def create(
    session: AsyncSession,
    *,
    unit_id: int,
    description: str,
    deadline: datetime,
    created_by: int,
    now: datetime,
    actor: str,
) -> Problem:
    problem = Problem(
        unit_id=unit_id,
        description=description,
        deadline=deadline,
        status="open",
        created_by=created_by,
        found_at=now,
    )
    session.add(problem)
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="problem.create",
        entity="problem",
        key=str(problem.id),
        after={
            "unit_id": unit_id,
            "description": description[:200],
            "deadline": deadline.isoformat(),
            "status": "open",
        },
    )
    return problem


async def find(session: AsyncSession, problem_id: int) -> tuple[Problem, Unit]:
    row = (
        await session.execute(
            select(Problem, Unit)
            .join(Unit, Unit.id == Problem.unit_id)
            .where(Problem.id == problem_id)
        )
    ).first()
    if row is None:
        raise Refused(problem_id, "unknown")
    return row[0], row[1]


async def close(
    session: AsyncSession, problem: Problem, *, note: str, now: datetime, actor: str
) -> None:
    """Close (销号) an open problem and set when it is looked at again."""
    if problem.status == "closed":
        raise Refused(problem.id, "closed", problem.closed_at)
    problem.status, problem.closed_at = "closed", now
    problem.recheck_at = now + RECHECK_AFTER
    audit.record(
        session,
        at=now,
        actor=actor,
        action="problem.close",
        entity="problem",
        key=str(problem.id),
        before={"status": "open"},
        after={"status": "closed", "recheck_at": problem.recheck_at.isoformat()},
        detail=note[:500],
    )
