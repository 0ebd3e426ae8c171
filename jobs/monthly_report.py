"""月报: on the first working day, the past month per community and unit, to the admins.

This is the draft: the rankings reach the community groups only when an admin approves them
with `发布 月报 2026-11` (handlers/stats.py). Building the report and posting it are separate
steps so that charts made from the same Report can join the post.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.publication import find
from bot.ledger.stats import Report, report
from bot.messages import Outbound
from bot.outbox import enqueue, group_target
from bot.render import Renderer
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "monthly_report"
KIND = "monthly"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    month = Period.containing("monthly", occurrence.astimezone(SHANGHAI).date()).previous()
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        r = await report(s, month, now)
        posted = await post(env, s, r, now)
        await record_detail(s, JOB, occurrence, f"{len(r.ranking)} units; {posted} posts")
    env.nudge()
    return True


async def post(env: JobEnv, session: AsyncSession, r: Report, now: datetime) -> int:
    """The draft into the admins' group; how many posts were queued."""
    spec = env.deployment.spec
    admin = {g.id: g for g in spec.groups}.get(spec.committee.admin_group or "")
    if admin is None:
        return 0
    body = await render(env.renderer, session, r)
    await enqueue(
        session,
        Outbound(body, title=f"{r.period.label}督办月报"),
        to=group_target(admin),
        kind=JOB,
        dedupe_key=f"{JOB}:{r.period.key}:admins",
        now=now,
    )
    return 1


async def render(renderer: Renderer, session: AsyncSession, r: Report) -> str:
    ranked = [u for u in r.ranking if u.rank is not None]
    return renderer.render(
        "posts/monthly_report.md.j2",
        month=r.period,
        r=r,
        ranked=ranked,
        unranked=r.ranking[len(ranked) :],
        publication=await find(session, KIND, r.period.key),
    )
