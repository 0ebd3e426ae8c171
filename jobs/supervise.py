"""督办: each overdue instance and each overdue rectification climbs a ladder, each step once:
a warning @-mentioning the liaisons on the first working day overdue; after N working days the
secretary and the community's lead unit are @-mentioned; after M the admins' group is told, the
unit goes on the period's negative list (负面清单) and a reminder talk (提醒谈话) is suggested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.deployment.schema import Group
from bot.duerules import Period
from bot.ledger.contacts import lead_of, mentions_for
from bot.ledger.due import count_overdue, overdue
from bot.ledger.escalation import (
    ADMINS,
    SECRETARY,
    WARN,
    Ladder,
    lateness,
    overdue_problems,
    put_on_negative_lists,
    reached_by,
    steps_taken,
    take_steps,
)
from bot.messages import Mention, Outbound
from bot.models import ChatGroup, Community, CommunityMember
from bot.outbox import Queued, enqueue_many, group_target
from bot.text import escape_markdown
from bot.workdays import WorkCalendar, load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "supervise"


@dataclass(frozen=True, slots=True)
class Case:
    subject: str  # instance or problem
    id: int
    unit_id: int
    unit_short: str
    what: str  # "12 开展主题党日" or "问题 7 ……"
    due_text: str
    late: int  # working days past the deadline
    period: str  # for the negative list
    group_key: str | None


async def run(env: JobEnv, occurrence: datetime) -> bool:
    now = env.clock.now()
    today = occurrence.astimezone(SHANGHAI).date()
    spec = env.deployment.spec
    groups = {g.id: g for g in spec.groups}
    admin = groups.get(spec.committee.admin_group or "")
    ladder = Ladder(
        spec.cycle.escalate_to_secretary_workdays, spec.cycle.escalate_to_admins_workdays
    )
    taken = 0
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        if not calendar.is_workday(today):
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        month = Period.containing("monthly", today).key
        late = lateness(calendar, today)
        cases = [
            Case(
                "instance",
                r.instance.id,
                r.unit_id,
                r.unit_short,
                f"**{r.instance.no}** {escape_markdown(r.title)}",
                f"{r.due.month}月{r.due.day}日",
                late(r.due),
                r.instance.period,
                r.group_key,
            )
            for r in await overdue(s, steps_due=_steps_due(ladder, calendar, today))
        ]
        instances_overdue = await count_overdue(s)
        community_group = {c.unit_id: c.group_key for c in cases}
        for p in await overdue_problems(s, now):
            cases.append(
                Case(
                    "problem",
                    p.problem.id,
                    p.unit_id,
                    p.unit_short,
                    f"问题 **{p.problem.id}** {escape_markdown(p.problem.description[:60])}",
                    f"{p.due.month}月{p.due.day}日",
                    late(p.due),
                    month,
                    community_group.get(p.unit_id) or await _group_of(s, p.unit_id),
                )
            )
        units = {c.unit_id for c in cases}
        leads = await lead_of(s, units)
        # One read instead of a refused insert per case, step and day; one insert per
        # thousand steps instead of one each.
        done = await steps_taken(s, [(c.subject, c.id) for c in cases])
        due = [
            (case, step)
            for case in cases
            for step in ladder.steps(case.late)
            if (case.subject, case.id, step) not in done
        ]
        fresh = await take_steps(s, [(c.subject, c.id, step) for c, step in due], now)
        people: dict[tuple[str, str], dict[int, list[Mention]]] = {}

        async def who(role: str, platform: str) -> dict[int, list[Mention]]:
            if (role, platform) not in people:
                # Only the units posted about today in that platform's groups, and their leads.
                wanted = {
                    c.unit_id
                    for c, step in due
                    if (c.subject, c.id, step) in fresh
                    and (g := groups.get(c.group_key or "")) is not None
                    and g.platform == platform
                }
                wanted |= {leads[u] for u in wanted if u in leads}
                people[(role, platform)] = await mentions_for(s, wanted, role, platform)
            return people[(role, platform)]

        posts: list[Queued] = []
        listings: list[tuple[int, str, str]] = []  # the negative list: unit, period, why
        for case, step in due:
            if (case.subject, case.id, step) not in fresh:
                continue
            taken += 1
            group = groups.get(case.group_key or "")
            if step == ADMINS:
                listings.append((case.unit_id, case.period, f"{case.what} 逾期{case.late}个工作日"))
                target = admin
                mentions: Sequence[Mention] = ()
            elif group is None:
                continue
            else:
                target = group
                liaisons = await who("liaison", group.platform)
                mentions = liaisons.get(case.unit_id, [])
                if step == SECRETARY:
                    secretaries = await who("secretary", group.platform)
                    lead = leads.get(case.unit_id)
                    mentions = [
                        *secretaries.get(case.unit_id, []),
                        *(liaisons.get(lead, []) if lead and lead != case.unit_id else []),
                    ]
            if target is None:
                continue
            posts.append(_post(env, target, case, step, mentions))
        await put_on_negative_lists(s, listings, now)
        await enqueue_many(s, posts, now=now)
        problems = sum(1 for c in cases if c.subject == "problem")
        detail = f"{instances_overdue + problems} overdue; {taken} steps taken"
        await record_detail(s, JOB, occurrence, detail)
    env.nudge()
    return True


def _post(env: JobEnv, target: Group, case: Case, step: int, mentions: Sequence[Mention]) -> Queued:
    body = env.renderer.render(
        "posts/supervise.md.j2", case=case, step=step, warn=WARN, secretary=SECRETARY, admins=ADMINS
    )
    title = {WARN: "逾期预警", SECRETARY: "督办提醒", ADMINS: "督办升级"}[step]
    return Queued(
        Outbound(body, title=title, mentions=tuple(mentions)),
        group_target(target),
        kind=f"{JOB}{step}",
        dedupe_key=f"{JOB}:{case.subject}:{case.id}:{step}",
        coalesce=True,
    )


def _steps_due(ladder: Ladder, calendar: WorkCalendar, today: date) -> dict[int, datetime | None]:
    """Per step, the latest deadline that has reached it today (None: any deadline)."""

    def end(day: date) -> datetime:
        return datetime.combine(day, time.max, SHANGHAI)

    return {
        WARN: None,
        SECRETARY: end(reached_by(calendar, today, ladder.to_secretary)),
        ADMINS: end(reached_by(calendar, today, ladder.to_admins)),
    }


async def _group_of(s: AsyncSession, unit_id: int) -> str | None:
    return await s.scalar(
        select(ChatGroup.key)
        .join(Community, Community.group_id == ChatGroup.id)
        .join(CommunityMember, CommunityMember.community_id == Community.id)
        .where(CommunityMember.unit_id == unit_id)
    )
