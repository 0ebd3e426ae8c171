"""The 督办 ladder: which step each overdue instance or problem has reached, each step once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.bulk import insert_new_returning
from bot.clock import SHANGHAI
from bot.models import Escalation, NegativeListing, PlanTask, Problem, Unit
from bot.workdays import WorkCalendar

WARN, SECRETARY, ADMINS = 1, 2, 3


@dataclass(frozen=True, slots=True)
class Ladder:
    to_secretary: int  # working days after the deadline
    to_admins: int

    def steps(self, late_workdays: int) -> list[int]:
        reached = [WARN]
        if late_workdays >= self.to_secretary:
            reached.append(SECRETARY)
        if late_workdays >= self.to_admins:
            reached.append(ADMINS)
        return reached


def late_workdays(calendar: WorkCalendar, due: date, today: date) -> int:
    return max(0, calendar.workdays_between(due, today))


def reached_by(calendar: WorkCalendar, today: date, n: int) -> date:
    """The latest deadline at least ``n`` working days late today (``late_workdays`` falls as
    the deadline moves later, so every earlier one is too)."""
    day, late = today, 0  # late == late_workdays(calendar, day, today) at each turn
    while late < n:
        late += calendar.is_workday(day)
        day -= timedelta(days=1)
    return day


def lateness(calendar: WorkCalendar, today: date) -> Callable[[date], int]:
    """``late_workdays`` against ``today`` for many deadlines. Counting walks every day since
    the deadline, and a province has tens of thousands of overdue cases sharing a few hundred
    deadlines: each distinct deadline is counted once."""
    known: dict[date, int] = {}

    def late(due: date) -> int:
        if due not in known:
            known[due] = late_workdays(calendar, due, today)
        return known[due]

    return late


async def take_steps(
    session: AsyncSession, steps: Sequence[tuple[str, int, int]], now: datetime
) -> set[tuple[str, int, int]]:
    """Record these (subject, id, step); the ones this call recorded. A step taken before is
    not recorded again (nothing is then to be said again)."""
    if not steps:
        return set()
    # A step taken before is skipped, and so is missing from what comes back.
    returning = ("subject", "subject_id", "step")
    if session.get_bind().dialect.name == "postgresql":
        table = cast(Table, Escalation.__table__)
        rows = ((a, b, c, now) for a, b, c in steps)
        columns = (*returning, "taken_at")
        found = await insert_new_returning(session, table, columns, rows, returning)
    else:  # one statement, run for every row in multi-row batches
        stmt = (
            sqlite_insert(Escalation)
            .on_conflict_do_nothing()
            .returning(Escalation.subject, Escalation.subject_id, Escalation.step)
        )
        values = [{"subject": a, "subject_id": b, "step": c, "taken_at": now} for a, b, c in steps]
        found = [tuple(r) for r in await session.execute(stmt, values)]
    return {(str(a), int(b), int(c)) for a, b, c in found}


async def steps_taken(
    session: AsyncSession, subjects: Iterable[tuple[str, int]]
) -> set[tuple[str, int, int]]:
    """The steps already taken for these (subject, id) pairs."""
    by_subject: dict[str, list[int]] = {}
    for subject, sid in subjects:
        by_subject.setdefault(subject, []).append(sid)
    found: set[tuple[str, int, int]] = set()
    for subject, ids in by_subject.items():
        for i in range(0, len(ids), 5000):  # within every backend's parameter limit
            chunk = ids[i : i + 5000]
            rows = (
                await session.execute(
                    select(Escalation.subject_id, Escalation.step).where(
                        Escalation.subject == subject, Escalation.subject_id.in_(chunk)
                    )
                )
            ).all()
            found.update((subject, sid, step) for sid, step in rows)
    return found


async def put_on_negative_lists(
    session: AsyncSession, entries: Sequence[tuple[int, str, str]], now: datetime
) -> None:
    """Put units on their period's negative list, (unit id, period, reason) in order; a unit
    already listed for the period stays as it was, and the first reason given is kept."""
    if not entries:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(NegativeListing)
        .on_conflict_do_nothing()
        .returning(NegativeListing.unit_id, NegativeListing.period)
    )
    reasons: dict[tuple[int, str], str] = {}
    for u, p, reason in entries:
        reasons.setdefault((u, p), reason)
    rows = [
        {"unit_id": u, "period": p, "reason": reason[:500], "added_at": now}
        for (u, p), reason in reasons.items()
    ]
    added = {(int(u), str(p)) for u, p in await session.execute(stmt, rows)}
    await audit.record_many(
        session,
        at=now,
        actor="job:supervise",
        action="negative_list.add",
        entity="unit",
        changes=[
            (str(u), None, {"period": p, "reason": reasons[(u, p)]})
            for u, p in reasons
            if (u, p) in added
        ],
    )


@dataclass(frozen=True, slots=True)
class OverdueProblem:
    problem: Problem
    unit_id: int
    unit_short: str

    @property
    def due(self) -> date:
        return self.problem.deadline.astimezone(SHANGHAI).date()


async def overdue_problems(session: AsyncSession, now: datetime) -> list[OverdueProblem]:
    rows = (
        await session.execute(
            select(Problem, Unit.id, Unit.short_name)
            .join(Unit, Unit.id == Problem.unit_id)
            .where(Problem.status == "open", Problem.deadline < now, Unit.active)
            .order_by(Problem.deadline, Problem.id)
        )
    ).all()
    return [OverdueProblem(p, uid, short) for p, uid, short in rows]


async def task_titles(session: AsyncSession, task_ids: set[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    rows = (
        await session.execute(select(PlanTask.id, PlanTask.title).where(PlanTask.id.in_(task_ids)))
    ).all()
    return {tid: title for tid, title in rows}
