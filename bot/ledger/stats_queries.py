"""The statistics' queries: a handful of grouped statements per call, whatever the number of
units, instances or periods, on SQLite and PostgreSQL alike.

Every count comes back keyed by (unit id, or 0 when not by unit; bucket), the bucket being which
of consecutive spans [edges[i], edges[i+1]) the deadline falls in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Subquery

from bot.models import CheckIn, CommunityMember, Problem, TaskInstance, Unit

REPORTED = ("submitted", "accepted")
Counts = dict[tuple[int, int], dict[str, int]]

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])
_FACTS = ("excused", "on_time", "late", "overdue", "open", "days_late")


def _bucket(column: Any, edges: Sequence[datetime]) -> ColumnElement[int]:
    """Which [edges[i], edges[i+1]) holds the value; rows outside are filtered by the caller."""
    if len(edges) == 2:
        return literal(0)
    whens = [(column < edge, i) for i, edge in enumerate(edges[1:-1])]
    return case(*whens, else_=len(edges) - 2)


def scoped(stmt: _S, unit_col: Any, community_id: int | None, unit_id: int | None) -> _S:
    stmt = stmt.join(Unit, and_(Unit.id == unit_col, Unit.active))
    if unit_id is not None:
        stmt = stmt.where(unit_col == unit_id)
    if community_id is not None:
        stmt = stmt.join(
            CommunityMember,
            and_(CommunityMember.unit_id == unit_col, CommunityMember.community_id == community_id),
        )
    return stmt


def instances(
    start: datetime,
    end: datetime,
    community_id: int | None = None,
    unit_id: int | None = None,
    *,
    grouped: bool = False,
) -> Subquery:
    """The active units' instances due in [start, end), in scope, each with its reported
    check-in: `at` when it was (last re)submitted and `late` 1 or 0, both NULL when unreported.

    An instance has at most one reported check-in (checkins.record reuses the current one), so
    the plain join gives one row per instance, which is the fast path. Nothing in the schema
    enforces that, though: `grouped` folds any second one (two people reporting at the same
    moment) into its instance, for callers that found more rows than instances. The scope
    applies before the check-ins are joined, so a unit's figures never read the whole table."""
    reported = and_(CheckIn.instance_id == TaskInstance.id, CheckIn.status.in_(REPORTED))
    own: list[Any] = [
        TaskInstance.id,
        TaskInstance.unit_id,
        TaskInstance.task_id,
        TaskInstance.no,
        TaskInstance.status,
        TaskInstance.due_at,
    ]
    columns = [c.label(c.key) for c in own]
    in_range = and_(TaskInstance.due_at >= start, TaskInstance.due_at < end)
    stmt: Select[*tuple[Any, ...]]
    if grouped:
        stmt = (
            select(
                *columns,
                func.min(CheckIn.updated_at).label("at"),
                func.max(CheckIn.late.cast(Integer)).label("late"),
            )
            .outerjoin(CheckIn, reported)
            .where(in_range)
            .group_by(*own)
        )
    else:
        stmt = (
            select(
                *columns,
                CheckIn.updated_at.label("at"),
                CheckIn.late.cast(Integer).label("late"),
            )
            .outerjoin(CheckIn, reported)
            .where(in_range)
        )
    return scoped(stmt, TaskInstance.unit_id, community_id, unit_id).subquery()


async def instance_count(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    community_id: int | None = None,
    unit_id: int | None = None,
) -> int:
    stmt = select(func.count(TaskInstance.id)).where(
        TaskInstance.due_at >= start, TaskInstance.due_at < end
    )
    return await session.scalar(scoped(stmt, TaskInstance.unit_id, community_id, unit_id)) or 0


def _instance_facts(
    edges: Sequence[datetime],
    now: datetime,
    community_id: int | None,
    unit_id: int | None,
    grouped: bool,
) -> Subquery:
    """One row per instance: its unit, its bucket and what it counts as (0 or 1 each)."""
    i = instances(edges[0], edges[-1], community_id, unit_id, grouped=grouped)
    excused = i.c.status == "excused"
    done = and_(~excused, i.c.status.in_(REPORTED), i.c.at.is_not(None))
    unreported = and_(~excused, ~done)
    late = and_(done, i.c.late == 1)
    days = LocalDay(i.c.at) - LocalDay(i.c.due_at)

    def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return case((condition, 1), else_=0)

    return select(
        i.c.unit_id,
        _bucket(i.c.due_at, edges).label("b"),
        flag(excused).label("excused"),
        flag(and_(done, i.c.late == 0)).label("on_time"),
        flag(late).label("late"),
        flag(and_(unreported, i.c.due_at < now)).label("overdue"),
        flag(and_(unreported, i.c.due_at >= now)).label("open"),
        # Whole calendar days; a report late on the deadline's own day counts as one.
        case((late, case((days < 1, 1), else_=days)), else_=0).label("days_late"),
    ).subquery()


def _problem_facts(
    edges: Sequence[datetime], now: datetime, community_id: int | None, unit_id: int | None
) -> Subquery:
    start, end = edges[0], edges[-1]
    closed = and_(Problem.closed_at.is_not(None), Problem.closed_at <= now)
    stmt = select(
        Problem.unit_id.label("unit_id"),
        _bucket(Problem.deadline, edges).label("b"),
        case((closed, 1), else_=0).label("closed"),
    ).where(Problem.deadline >= start, Problem.deadline < end)
    return scoped(stmt, Problem.unit_id, community_id, unit_id).subquery()


async def counts(
    session: AsyncSession,
    edges: Sequence[datetime],
    now: datetime,
    *,
    by_unit: bool = False,
    community_id: int | None = None,
    unit_id: int | None = None,
) -> Counts:
    """Instances by what they count as, problems found and closed; for one span by unit, the
    problems open at its end (or now) too. Keys with nothing to count are left out."""
    result: Counts = {}

    def at(unit: int, bucket: int) -> dict[str, int]:
        return result.setdefault((unit if by_unit else 0, bucket), {})

    for grouped in (False, True):
        facts = _instance_facts(edges, now, community_id, unit_id, grouped)
        keys = [facts.c.unit_id, facts.c.b] if by_unit else [facts.c.b]
        summed = (
            await session.execute(
                select(*keys, func.count(), *(func.sum(facts.c[n]) for n in _FACTS)).group_by(*keys)
            )
        ).all()
        joined = sum(row[len(keys)] for row in summed)
        if grouped or joined == await instance_count(
            session, edges[0], edges[-1], community_id, unit_id
        ):
            break
    for row in summed:
        unit, bucket = (row[0], row[1]) if by_unit else (0, row[0])
        values = [int(v or 0) for v in row[len(keys) :]]
        at(unit, bucket).update(zip(("assigned", *_FACTS), values, strict=True))
    problems = _problem_facts(edges, now, community_id, unit_id)
    keys = [problems.c.unit_id, problems.c.b] if by_unit else [problems.c.b]
    rows = await session.execute(
        select(*keys, func.count(), func.sum(problems.c.closed)).group_by(*keys)
    )
    for row in rows.all():
        unit, bucket = (row[0], row[1]) if by_unit else (0, row[0])
        found = at(unit, bucket)
        found["problems_found"], found["problems_closed"] = int(row[-2]), int(row[-1] or 0)
    if by_unit and len(edges) == 2:
        moment = min(edges[-1], now)
        still = _still_open(moment)
        opened = await session.execute(
            scoped(
                select(Problem.unit_id, func.count()).where(still), Problem.unit_id, None, None
            ).group_by(Problem.unit_id)
        )
        for unit, n in opened.all():
            at(unit, 0)["problems_open"] = int(n)
    return result


def _still_open(moment: datetime) -> ColumnElement[bool]:
    return and_(
        Problem.found_at <= moment, or_(Problem.closed_at.is_(None), Problem.closed_at > moment)
    )


async def open_problems(
    session: AsyncSession,
    edges: Sequence[datetime],
    now: datetime,
    community_id: int | None,
    unit_id: int | None,
) -> list[int]:
    """Problems open at the end of each span (or now, if earlier), in one query."""
    moments = [min(edge, now) for edge in edges[1:]]
    stmt = select(*(func.sum(case((_still_open(m), 1), else_=0)) for m in moments)).where(
        _still_open_any(moments[0], moments[-1])
    )
    row = (await session.execute(scoped(stmt, Problem.unit_id, community_id, unit_id))).one()
    return [int(v or 0) for v in row]


def _still_open_any(first: datetime, last: datetime) -> ColumnElement[bool]:
    """Open at some moment in [first, last]: found by the last, not closed before the first."""
    return and_(
        Problem.found_at <= last, or_(Problem.closed_at.is_(None), Problem.closed_at > first)
    )


class LocalDay(FunctionElement[int]):
    """Days since 1970-01-01 of a stored UTC timestamp's Shanghai date (UTC+8, no DST), so that
    days late are calendar days on both databases."""

    type = Integer()
    inherit_cache = True
    name = "local_day"


@compiles(LocalDay, "sqlite")
def _local_day_sqlite(element: LocalDay, compiler: SQLCompiler, **kw: Any) -> str:
    # julianday() counts from noon; +8h to Shanghai, -12h to midnight, minus the 1970 epoch.
    value = compiler.process(element.clauses, **kw)
    return f"CAST(julianday({value}) - 2440587.1666666665 AS INTEGER)"


@compiles(LocalDay, "postgresql")
def _local_day_postgresql(element: LocalDay, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR((EXTRACT(EPOCH FROM {value}) + 28800) / 86400) AS INTEGER)"
