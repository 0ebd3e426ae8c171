"""月报: on the first working day, the past month per community and unit, to the admins.

This is the draft: the rankings reach the community groups only when an admin approves them
with `发布 月报 2026-11` (handlers/stats.py). Building the report and posting it are separate
steps so that charts made from the same Report can join the post.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.publication import find
from bot.ledger.stats import Report, report, shortlist, trend
from bot.messages import Outbound
from bot.outbox import enqueue, group_target
from bot.render import Renderer
from bot.reports import pictures
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "monthly_report"
KIND = "monthly"
TREND = 12


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    month = Period.containing("monthly", occurrence.astimezone(SHANGHAI).date()).previous()
    # Figures and pictures first, outside the writing transaction (charts take seconds).
    async with env.db.begin() as s:
        r = await report(s, month, now)
        line = await trend(s, month, now, TREND)
    images = [
        await pictures.render(pictures.completion(r), "completion"),
        await pictures.render(pictures.trend(f"近{TREND}个月按时率", line), "trend"),
    ]
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        posted = await post(env, s, r, now, [i for i in images if i is not None])
        await record_detail(s, JOB, occurrence, f"{len(r.ranking)} units; {posted} posts")
    env.nudge()
    return True


async def post(
    env: JobEnv, session: AsyncSession, r: Report, now: datetime, images: Sequence[bytes] = ()
) -> int:
    """The draft into the admins' group, each chart after it; how many posts were queued."""
    spec = env.deployment.spec
    admin = {g.id: g for g in spec.groups}.get(spec.committee.admin_group or "")
    if admin is None:
        return 0
    title = f"{r.period.label}督办月报"
    body = await render(env.renderer, session, r)
    # One picture per message: a group robot posts one image per call.
    first, rest = (images[0], images[1:]) if images else (None, ())
    messages = [Outbound(body, title=title, image=first)]
    messages += [Outbound(f"{title}（图{n}）", title=title, image=i) for n, i in enumerate(rest, 2)]
    for n, message in enumerate(messages, 1):
        await enqueue(
            session,
            message,
            to=group_target(admin),
            kind=JOB,
            dedupe_key=f"{JOB}:{r.period.key}:admins" + (f":{n}" if n > 1 else ""),
            now=now,
        )
    return len(messages)


async def render(renderer: Renderer, session: AsyncSession, r: Report) -> str:
    ranked = [u for u in r.ranking if u.rank is not None]
    return renderer.render(
        "posts/monthly_report.md.j2",
        month=r.period,
        r=r,
        listed=shortlist(r.communities),
        ranked=ranked,
        unranked=r.ranking[len(ranked) :],
        publication=await find(session, KIND, r.period.key),
    )
