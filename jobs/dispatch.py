"""调度: Mondays and mid-month, a roll-call in each community group — who has reported this
month and who has not — with the lead unit asked for the community's progress, and a digest to
the admins (the communities that lag furthest, where there are many).

Posts go in one statement, not one each: a province has 2,500 communities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.contacts import mentions_for
from bot.ledger.stats import period_figures, shortlist
from bot.messages import Outbound
from bot.models import ChatGroup, Community, CommunityMember
from bot.outbox import Queued, enqueue_many, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "dispatch"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    today = occurrence.astimezone(SHANGHAI).date()
    month = Period.containing("monthly", today)
    spec = env.deployment.spec
    groups = {g.id: g for g in spec.groups}
    admin = groups.get(spec.committee.admin_group or "")
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        if not (await load_calendar(s)).is_workday(today):  # a Monday in a holiday week
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        communities = await period_figures(s, month.first_day, month.last_day, now)
        meta = {
            cid: (key, lead)
            for cid, key, lead in (
                await s.execute(
                    select(Community.id, ChatGroup.key, CommunityMember.unit_id)
                    .outerjoin(ChatGroup, ChatGroup.id == Community.group_id)
                    .outerjoin(
                        CommunityMember,
                        (CommunityMember.community_id == Community.id) & CommunityMember.is_lead,
                    )
                )
            ).all()
        }
        placed = []  # (community, its configured group, its lead unit)
        for c in communities:
            group_key, lead = meta.get(c.community_id, (None, None))
            if (group := groups.get(group_key or "")) is not None:
                placed.append((c, group, lead))
        leads: dict[str, set[int]] = {}  # per platform, the lead units asked there
        for _, group, lead in placed:
            if lead:
                leads.setdefault(group.platform, set()).add(lead)
        liaisons = {p: await mentions_for(s, ids, "liaison", p) for p, ids in leads.items()}
        posts: list[Queued] = []
        for c, group, lead in placed:
            mentions = liaisons.get(group.platform, {}).get(lead, []) if lead else []
            body = env.renderer.render("posts/dispatch.md.j2", month=month, c=c, day=today)
            posts.append(
                Queued(
                    Outbound(body, title="工作调度", mentions=tuple(mentions)),
                    group_target(group),
                    kind=JOB,
                    dedupe_key=f"{JOB}:{today.isoformat()}:{group.id}",
                )
            )
        if admin is not None:
            body = env.renderer.render(
                "posts/dispatch_digest.md.j2",
                month=month,
                listed=shortlist(communities),
                day=today,
            )
            posts.append(
                Queued(
                    Outbound(body, title="调度周报"),
                    group_target(admin),
                    kind=JOB,
                    dedupe_key=f"{JOB}:{today.isoformat()}:admins",
                )
            )
        await enqueue_many(s, posts, now=now)
        await record_detail(s, JOB, occurrence, f"{len(communities)} communities")
    env.nudge()
    return True
