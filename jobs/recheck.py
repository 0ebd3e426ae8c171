"""回头看: some days after a problem is closed, its unit is asked to confirm the fix holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.ledger.contacts import mentions_for
from bot.messages import Outbound
from bot.models import ChatGroup, Community, CommunityMember, Problem, Unit
from bot.outbox import enqueue, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "recheck"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    groups = {g.id: g for g in env.deployment.spec.groups}
    asked = 0
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        if not calendar.is_workday(occurrence.date()):
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        rows = (
            await s.execute(
                select(Problem, Unit.short_name, ChatGroup.key)
                .join(Unit, Unit.id == Problem.unit_id)
                .outerjoin(CommunityMember, CommunityMember.unit_id == Unit.id)
                .outerjoin(Community, Community.id == CommunityMember.community_id)
                .outerjoin(ChatGroup, ChatGroup.id == Community.group_id)
                .where(Problem.status == "closed", Problem.recheck_at <= now, Unit.active)
                .order_by(Problem.recheck_at, Problem.id)
            )
        ).all()
        for problem, short, group_key in rows:
            group = groups.get(group_key or "")
            if group is None:
                continue
            liaisons = await mentions_for(s, [problem.unit_id], "liaison", group.platform)
            body = env.renderer.render("posts/recheck.md.j2", problem=problem, unit=short)
            asked += await enqueue(
                s,
                Outbound(
                    body, title="整改回头看", mentions=tuple(liaisons.get(problem.unit_id, ()))
                ),
                to=group_target(group),
                kind=JOB,
                dedupe_key=f"{JOB}:problem:{problem.id}",
                now=now,
                coalesce=True,
            )
        await record_detail(s, JOB, occurrence, f"{asked} units asked")
    env.nudge()
    return True
