"""月度分解: on the first working day, materialise the month and post each community its tasks;
the admins get a summary: the totals, and the communities that need their attention.

The summary is one robot message at any scale: a province has thousands of communities, and a
line each would be 60 messages, two minutes of the admins' robot. It lists every community only
when they are few, and otherwise only those needing attention, capped; 统计, 看板 and 导出 give
the full picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.breakdown import Item, breakdown
from bot.ledger.contacts import units_without
from bot.ledger.instances import materialise
from bot.messages import Outbound
from bot.models import ChatGroup, Community, CommunityMember, Unit
from bot.outbox import Queued, enqueue, enqueue_many, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import LATE_AFTER, claim_occurrence, record_detail

JOB = "breakdown"
LIST_ALL_UP_TO = 12  # communities: up to this many, the summary has a line for each
ATTENTION_CAP = 10  # communities needing attention named in the summary; the rest counted


@dataclass(frozen=True, slots=True)
class Line:
    """One community in the admins' summary."""

    name: str
    units: int
    tasks: int
    instances: int
    posted: bool  # a configured group got its breakdown
    lead: bool
    unstaffed: list[str]  # units without liaisons

    @property
    def needs_attention(self) -> bool:
        return not (self.posted and self.lead) or bool(self.unstaffed)


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
        unstaffed = await units_without(s, "liaison")
        lines: list[Line] = []
        posts: list[Queued] = []
        for cid, name, group_key in communities:
            mine = items.get(cid, [])
            group = groups.get(group_key or "")
            lines.append(
                Line(
                    name,
                    sizes.get(cid, 0),
                    len(mine),
                    sum(i.count for i in mine),
                    group is not None,
                    cid in leads,
                    unstaffed.get(cid, []),
                )
            )
            if group is None:
                continue
            body = env.renderer.render(
                "posts/breakdown.md.j2",
                community=name,
                month=month,
                items=mine,
                lead=leads.get(cid, ""),
                late=late,
                **_by_owners(mine),
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
                created=created,
                late=late,
                **_summary(lines, items),
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


def _by_owners(items: list[Item]) -> dict[str, list[Item]]:
    """A community's items by whom they fall to, each in deadline order: split here once, not
    filtered three times per post in the template (2,500 posts a month in a province)."""
    split: dict[str, list[Item]] = {"everyone": [], "leads": [], "named": []}
    for item in items:
        group = _OWNERS_GROUP.get(item.owners)
        if group is not None:
            split[group].append(item)
    return split


_OWNERS_GROUP = {"all": "everyone", "leads": "leads", "named": "named"}


def _summary(lines: list[Line], items: dict[int, list[Item]]) -> dict[str, Any]:
    """The summary's variables: totals, every community's line when they are few, and those
    needing attention (worst first, capped)."""
    attention = sorted(
        (line for line in lines if line.needs_attention),
        key=lambda line: (line.posted, line.lead),  # unposted, then leaderless, then the rest
    )
    return {
        "communities": len(lines),
        "units": sum(line.units for line in lines),
        "tasks": len({i.task_id for mine in items.values() for i in mine}),
        "instances": sum(line.instances for line in lines),
        "posted": sum(line.posted for line in lines),
        "rows": lines if len(lines) <= LIST_ALL_UP_TO else [],
        "attention": attention[:ATTENTION_CAP],
        "more": max(0, len(attention) - ATTENTION_CAP),
    }
