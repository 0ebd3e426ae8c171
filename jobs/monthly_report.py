"""月报: on the first working day, the past month per community and unit, to the admins."""

from __future__ import annotations

from datetime import datetime

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.stats import period_figures, ranking_key
from bot.messages import Outbound
from bot.outbox import enqueue, group_target
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "monthly_report"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    month = Period.containing("monthly", occurrence.astimezone(SHANGHAI).date()).previous()
    spec = env.deployment.spec
    admin = {g.id: g for g in spec.groups}.get(spec.committee.admin_group or "")
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        communities = await period_figures(s, month.first_day, month.last_day, now)
        units = sorted((u for c in communities for u in c.units), key=ranking_key)
        if admin is not None:
            body = env.renderer.render(
                "posts/monthly_report.md.j2", month=month, communities=communities, units=units
            )
            await enqueue(
                s,
                Outbound(body, title=f"{month.label}督办月报"),
                to=group_target(admin),
                kind=JOB,
                dedupe_key=f"{JOB}:{month.key}:admins",
                now=now,
            )
        await record_detail(s, JOB, occurrence, f"{len(units)} units")
    env.nudge()
    return True
