"""月度分解: on the first working day, materialise the month and post each community its tasks."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.breakdown import breakdown
from bot.ledger.instances import materialise
from bot.messages import Outbound
from bot.models import ChatGroup, Community, CommunityMember, Unit
from bot.outbox import Queued, enqueue, enqueue_many, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import LATE_AFTER, claim_occurrence, record_detail

JOB = "breakdown"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    """Post the breakdown of `occurrence`'s month; False when this occurrence already ran."""
    now = env.clock.now()
    month = Period.containing("monthly", occurrence.astimezone(SHANGHAI).date())
    late = now - occurrence > LATE_AFTER
    groups = {g.id: g for g in env.deployment.spec.groups}
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        created = await materialise(s, month, now=now, is_workday=calendar.is_workday)
        items = await breakdown(s, month)
        communities = (
            await s.execute(
                select(Community.id, Community.name, ChatGroup.key)
                .outerjoin(ChatGroup, ChatGroup.id == Community.group_id)
                .where(Community.active)
                .order_by(Community.id)
            )
        ).all()
        leads = dict(
            (
                await s.execute(
                    select(CommunityMember.community_id, Unit.short_name)
                    .join(Unit, Unit.id == CommunityMember.unit_id)
                    .where(CommunityMember.is_lead)
                )
            ).all()
        )
        sizes = dict(
            (
                await s.execute(
                    select(CommunityMember.community_id, func.count()).group_by(
                        CommunityMember.community_id
                    )
                )
            ).all()
        )
        title = f"{month.label}任务分解"
        summary = []
        posts: list[Queued] = []
        for cid, name, group_key in communities:
            mine = items.get(cid, [])
            summary.append(
                {
                    "name": name,
                    "units": sizes.get(cid, 0),
                    "tasks": len(mine),
                    "instances": sum(i.count for i in mine),
                }
            )
            group = groups.get(group_key or "")
            if group is None:
                continue
            body = env.renderer.render(
                "posts/breakdown.md.j2",
                community=name,
                month=month,
                items=mine,
                lead=leads.get(cid, ""),
                late=late,
            )
            posts.append(
                Queued(
                    Outbound(body, title=title),
                    group_target(group),
                    kind=JOB,
                    dedupe_key=f"{JOB}:{month.key}:{group.id}",
                )
            )
        await enqueue_many(s, posts, now=now)
        admin = groups.get(env.deployment.spec.committee.admin_group or "")
        if admin is not None:
            body = env.renderer.render(
                "posts/breakdown_summary.md.j2",
                month=month,
                rows=summary,
                created=created,
                late=late,
            )
            await enqueue(
                s,
                Outbound(body, title=title),
                to=group_target(admin),
                kind=JOB,
                dedupe_key=f"{JOB}:{month.key}:admins",
                now=now,
            )
        if admin is not None:
            today = occurrence.astimezone(SHANGHAI).date()
            for year in calendar.unknown_years_in(today, today + timedelta(days=60)):
                # Once per year: the keys stop every later breakdown from repeating it.
                body = env.renderer.render("posts/calendar_unknown.md.j2", year=year)
                await enqueue(
                    s,
                    Outbound(body, title="工作日安排提醒"),
                    to=group_target(admin),
                    kind="calendar",
                    dedupe_key=f"calendar-unknown:{year}",
                    now=now,
                )
        await record_detail(s, JOB, occurrence, f"{created} instances; {len(communities)} groups")
    env.nudge()
    return True
