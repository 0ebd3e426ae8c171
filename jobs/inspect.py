"""督查: at the end of each working day, instances past their deadline without an accepted
report become overdue, and the admins get the list and the reports awaiting review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from bot import audit
from bot.ledger.due import past_due
from bot.messages import Outbound
from bot.models import CheckIn
from bot.outbox import enqueue, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "inspect"


async def run(env: JobEnv, occurrence: datetime) -> bool:
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
        rows = await past_due(s, now)
        for r in rows:
            before = r.instance.status
            r.instance.status, r.instance.updated_at = "overdue", now
            audit.record(
                s,
                at=now,
                actor="job:inspect",
                action="instance.overdue",
                entity="instance",
                key=str(r.instance.id),
                before={"status": before},
                after={"status": "overdue"},
            )
        waiting = (
            await s.scalar(
                select(func.count()).select_from(CheckIn).where(CheckIn.status == "submitted")
            )
            or 0
        )
        if admin is not None and (rows or waiting):
            body = env.renderer.render(
                "posts/inspect.md.j2", rows=rows, waiting=waiting, day=occurrence.date()
            )
            await enqueue(
                s,
                Outbound(body, title="督查日报"),
                to=group_target(admin),
                kind=JOB,
                dedupe_key=f"{JOB}:{occurrence.date().isoformat()}",
                now=now,
            )
        await record_detail(s, JOB, occurrence, f"{len(rows)} became overdue; {waiting} to review")
    env.nudge()
    return True
