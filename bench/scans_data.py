"""The scans benchmark's ledger: task instances of the real plan for the province's units,
with check-ins, escalation steps and the negative list as a running deployment has them.

Instances are the plan's own (due rules, owners all/leads/named), period by period from the
most recent backwards — the current month, quarter and year first, then earlier months and
quarters — until ``count`` rows; the last period taken may stop part-way through its tasks.
With the sample plan the current month's view alone (month + quarter + year) is about 54
instances a unit, so at 20,000 units 1,000,000 instances are the live state of one quarter;
``count`` above ~1.1 M reaches back into earlier months.

Statuses follow each instance's deadline as seen on the first benchmark day ``today``:
settled ones (deadline before the previous working day, already inspected) are accepted,
overdue, awaiting review or excused; those due since (not yet inspected) are mostly done,
some still open; future ones mostly open. Overdue instances carry the 督办 steps that the
previous working day's run took. Deterministic: the same arguments give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text

from bot.clock import SHANGHAI
from bot.db import Database, UTCDateTime
from bot.duerules import Period, parse_due_rule
from bot.ledger.escalation import Ladder, late_workdays
from bot.ledger.instances import due_at
from bot.models import CommunityMember, Identity, PlanTask, PlanTaskUnit, Role, Unit
from bot.workdays import WorkCalendar, load_calendar

BATCH = 50_000
INSTANCE_COLUMNS = (
    "id", "task_id", "unit_id", "period", "no", "due_at", "status", "excused_reason",
    "created_at", "updated_at",
)  # fmt: skip
CHECKIN_COLUMNS = (
    "id", "instance_id", "reporter_id", "for_unit_id", "on_behalf", "text", "late", "status",
    "platform", "platform_msg_id", "submitted_at", "updated_at",
)  # fmt: skip
ESCALATION_COLUMNS = ("id", "subject", "subject_id", "step", "taken_at")
NEGATIVE_COLUMNS = ("id", "unit_id", "period", "reason", "added_at")


@dataclass
class Seeded:
    instances: int = 0
    checkins: int = 0
    escalations: int = 0
    negative: int = 0
    statuses: dict[str, int] | None = None


def _pick(h: int, table: Sequence[tuple[str, int]]) -> str:
    """A status by per-mille weights."""
    for status, upto in table:
        if h < upto:
            return status
    return table[-1][0]


# Cumulative per-mille weights.
SETTLED = (("accepted", 880), ("overdue", 950), ("submitted", 985), ("excused", 1000))
UNINSPECTED = (("accepted", 790), ("submitted", 880), ("pending", 990), ("returned", 1000))
FUTURE = (("pending", 600), ("submitted", 820), ("accepted", 970), ("returned", 1000))
CHECKED_IN = {"submitted": "submitted", "accepted": "accepted", "returned": "returned"}


def _periods(today: date) -> Iterator[Period]:
    """Most recent first: this month, quarter and year, then earlier months and quarters."""
    month = Period.containing("monthly", today)
    yield month
    yield Period.containing("quarterly", today)
    yield Period.containing("yearly", today)
    quarter = Period.containing("quarterly", today)
    for _ in range(60):
        month = month._shift(-1)
        yield month
        if month.index in (3, 6, 9, 12):
            quarter = quarter._shift(-1)
            yield quarter
            if month.index == 12:
                yield Period("yearly", month.year, 0)


def _fmt(value: Any, sqlite: bool) -> Any:
    if sqlite and isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def _bulk(
    db: Database, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        if db.dialect == "postgresql":
            await driver.copy_records_to_table(table, records=rows, columns=list(columns))  # type: ignore[union-attr]
        else:
            marks = ", ".join("?" for _ in columns)
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            sqlite = db.dialect == "sqlite"
            await driver.executemany(sql, [tuple(_fmt(v, sqlite) for v in r) for r in rows])  # type: ignore[union-attr]
            await driver.commit()  # type: ignore[union-attr]
        await conn.commit()


async def seed(db: Database, count: int, today: date, ladder: Ladder) -> Seeded:
    async with db.begin() as s:
        calendar = await load_calendar(s)
        units = [
            (uid, key)
            for uid, key in (await s.execute(select(Unit.id, Unit.key).order_by(Unit.id))).all()
        ]
        tasks = (
            await s.scalars(select(PlanTask).where(PlanTask.active).order_by(PlanTask.id))
        ).all()
        leads = set(
            (await s.scalars(select(CommunityMember.unit_id).where(CommunityMember.is_lead))).all()
        )
        named: dict[int, set[int]] = {}
        for tid, uid in (await s.execute(select(PlanTaskUnit.task_id, PlanTaskUnit.unit_id))).all():
            named.setdefault(tid, set()).add(uid)
        reporters: dict[int, tuple[int, str]] = {}
        rows = await s.execute(
            select(Role.unit_id, Role.person_id, Identity.platform)
            .join(Identity, Identity.person_id == Role.person_id)
            .where(Role.role == "liaison")
            .order_by(Role.unit_id, Role.person_id)
        )
        for uid, pid, platform in rows.all():
            reporters.setdefault(uid, (pid, platform))
    prev = _previous_workday(calendar, today)
    yesterday_steps: dict[date, list[int]] = {}
    rules = {t.id: parse_due_rule(t.due_rule) for t in tasks}
    out = Seeded(statuses={})
    assert out.statuses is not None
    # Generate most recent first, then insert oldest first (the order the bot created them).
    chunks: list[list[tuple[int, int, str, date, int]]] = []
    left = count
    for period in _periods(today):
        if left <= 0:
            break
        chunk = []
        for t in tasks:
            rule = rules[t.id]
            cadence = t.cadence
            if cadence == "once":
                if period.cadence != "monthly":
                    continue
                due = rule.due_date(None, calendar.is_workday)
                if Period.containing("monthly", due) != period:
                    continue
            elif cadence != period.cadence:
                continue
            else:
                due = rule.due_date(period, calendar.is_workday)
            owners = [
                u
                for u, _ in units
                if t.owners == "all"
                or (t.owners == "leads" and u in leads)
                or (t.owners == "named" and u in named.get(t.id, set()))
            ]
            for i, uid in enumerate(owners[:left]):
                chunk.append((t.id, uid, period.key, due, i))
            left -= min(left, len(owners))
            if left <= 0:
                break
        chunks.append(chunk)
    numbers: dict[int, int] = {}
    next_id = {"instance": 1, "checkin": 1, "escalation": 1, "negative": 1}
    instances: list[tuple[Any, ...]] = []
    checkins: list[tuple[Any, ...]] = []
    escalations: list[tuple[Any, ...]] = []
    negative: list[tuple[Any, ...]] = []
    listed: set[tuple[int, str]] = set()

    async def flush(force: bool = False) -> None:
        for table, cols, rows in (
            ("task_instances", INSTANCE_COLUMNS, instances),
            ("checkins", CHECKIN_COLUMNS, checkins),
            ("escalations", ESCALATION_COLUMNS, escalations),
            ("negative_list", NEGATIVE_COLUMNS, negative),
        ):
            if rows and (force or len(rows) >= BATCH):
                await _bulk(db, table, cols, rows)
                rows.clear()

    for chunk in reversed(chunks):
        chunk.sort(key=lambda r: (r[1], r[3], r[0]))
        for task_id, uid, period, due, _ in chunk:
            iid = next_id["instance"]
            next_id["instance"] += 1
            numbers[uid] = no = numbers.get(uid, 0) + 1
            h = (uid * 7919 + task_id * 104729 + len(period) * 31 + due.toordinal() * 13) % 1000
            if due < prev:
                status = _pick(h, SETTLED)
            elif due < today:
                status = _pick(h, UNINSPECTED)
            else:
                status = _pick(h, FUTURE)
            deadline = due_at(due)
            created = datetime.combine(
                Period.parse(period).first_day, datetime.min.time(), SHANGHAI
            ) + timedelta(hours=9)
            created = min(created, deadline)
            instances.append(
                (iid, task_id, uid, period, no, deadline, status,
                 "单位因故申请免报" if status == "excused" else None, created, created)
            )  # fmt: skip
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status in CHECKED_IN and uid in reporters:
                pid, platform = reporters[uid]
                at = min(deadline - timedelta(days=h % 9), created + timedelta(days=20))
                at = max(at, created)
                checkins.append(
                    (next_id["checkin"], iid, pid, uid, False, "已完成，材料见附件", False,
                     CHECKED_IN[status], platform, f"bench-{iid}", at, at)
                )  # fmt: skip
                next_id["checkin"] += 1
            if status == "overdue":
                if due not in yesterday_steps:
                    yesterday_steps[due] = ladder.steps(late_workdays(calendar, due, prev))
                taken_at = datetime.combine(prev, datetime.min.time(), SHANGHAI) + timedelta(
                    hours=9, minutes=30
                )
                for step in yesterday_steps[due]:
                    escalations.append((next_id["escalation"], "instance", iid, step, taken_at))
                    next_id["escalation"] += 1
                    if step == 3 and (uid, period) not in listed:
                        listed.add((uid, period))
                        negative.append((next_id["negative"], uid, period, "逾期", taken_at))
                        next_id["negative"] += 1
            if len(instances) >= BATCH:
                await flush(force=True)
    await flush(force=True)
    if db.dialect == "postgresql":
        async with db.begin() as s:
            for table in ("task_instances", "checkins", "escalations", "negative_list"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce(max(id), 1)) FROM {table}"
                    )
                )
    out.instances = next_id["instance"] - 1
    out.checkins = next_id["checkin"] - 1
    out.escalations = next_id["escalation"] - 1
    out.negative = next_id["negative"] - 1
    return out


def _previous_workday(calendar: WorkCalendar, day: date) -> date:
    day -= timedelta(days=1)
    while not calendar.is_workday(day):
        day -= timedelta(days=1)
    return day


async def reports_arrive(db: Database, since: date, before: datetime) -> int:
    """Between benchmark days, liaisons report: of the open instances due from ``since`` up to
    ``before``, all but the same 12% (by id) are accepted, as most are by their deadline."""
    start = datetime.combine(since, datetime.min.time(), SHANGHAI)
    async with db.begin() as s:
        result = await s.execute(
            text(
                "UPDATE task_instances SET status = 'accepted', updated_at = :at "
                "WHERE status IN ('pending', 'returned') AND due_at >= :start "
                "AND due_at < :before AND (CAST(id AS BIGINT) * 7919) % 1000 >= 120"
            ).bindparams(
                bindparam("at", type_=UTCDateTime()),
                bindparam("start", type_=UTCDateTime()),
                bindparam("before", type_=UTCDateTime()),
            ),
            {"at": before, "start": start, "before": before},
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def at_rest(db: Database) -> None:
    """The database as a running deployment's would be: SQLite's write-ahead log folded into
    the file, PostgreSQL vacuumed and analysed (autovacuum would have by now)."""
    async with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        else:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            await conn.commit()
