"""督查: at the end of each working day, instances past their deadline without an accepted
report become overdue, and the admins get the list and the reports awaiting review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from bot import audit
from bot.ledger.due import past_due, past_due_ids
from bot.messages import Outbound
from bot.models import CheckIn, TaskInstance
from bot.outbox import enqueue, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "inspect"
LISTED = 30  # instances the admins' post names; the rest it counts
PART = 5000  # within every backend's parameter limit


async def run(env: JobEnv, occurrence: datetime, *, part: int = PART) -> bool:
    now = env.clock.now()
    admin = {g.id: g for g in env.deployment.spec.groups}.get(
        env.deployment.spec.committee.admin_group or ""
    )
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        if not calendar.is_workday(occurrence.date()):
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        # By id and status, and in parts: the day after a deadline a province has thousands,
        # and a first start late in the month a hundred thousand.
        found = await past_due_ids(s, now)
        listed = await past_due(s, now, limit=LISTED)
        for i in range(0, len(found), part):
            ids = found[i : i + part]
            await s.execute(
                update(TaskInstance)
                .where(TaskInstance.id.in_([iid for iid, _ in ids]))
                .values(status="overdue", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            await audit.record_many(
                s,
                at=now,
                actor="job:inspect",
                action="instance.overdue",
                entity="instance",
                changes=[(str(iid), {"status": was}, {"status": "overdue"}) for iid, was in ids],
            )
        waiting = (
            await s.scalar(
                select(func.count()).select_from(CheckIn).where(CheckIn.status == "submitted")
            )
            or 0
        )
        if admin is not None and (found or waiting):
            body = env.renderer.render(
                "posts/inspect.md.j2",
                rows=listed,
                count=len(found),
                waiting=waiting,
                day=occurrence.date(),
            )
            await enqueue(
                s,
                Outbound(body, title="督查日报"),
                to=group_target(admin),
                kind=JOB,
                dedupe_key=f"{JOB}:{occurrence.date().isoformat()}",
                now=now,
            )
        await record_detail(s, JOB, occurrence, f"{len(found)} became overdue; {waiting} to review")
    env.nudge()
    return True
