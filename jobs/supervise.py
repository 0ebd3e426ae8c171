"""督办: each overdue instance and each overdue rectification climbs a ladder, each step once:
a warning @-mentioning the liaisons on the first working day overdue; after N working days the
secretary and the community's lead unit are @-mentioned; after M the admins' group is told, the
unit goes on the period's negative list (负面清单) and a reminder talk (提醒谈话) is suggested.

Every step is recorded per case, but a unit hears once per step and run: its cases that reach
the same step together go into one post listing each of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.deployment.schema import Group
from bot.duerules import Period
from bot.ledger.contacts import lead_of, mentions_for
from bot.ledger.due import Overdue, count_overdue, overdue
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
from bot.outbox import Batches, Queued, group_target
from bot.text import escape_markdown
from bot.workdays import WorkCalendar, load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "supervise"
# Posts rendered and held before they are written (two batches at most: one being written):
# a heavy day has ten thousand, and held all at once with their rows they took some 20 MB.
POSTS_AT_ONCE = 1000
# Overdue instances read into cases, stepped and posted at a time. A first start late in the
# month finds a province's every missed deadline at once: 102,500 held together took 370 MB.
PART = 5000


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


async def run(
    env: JobEnv, occurrence: datetime, *, part: int = PART, posts_at_once: int = POSTS_AT_ONCE
) -> bool:
    now = env.clock.now()
    today = occurrence.astimezone(SHANGHAI).date()
    spec = env.deployment.spec
    ladder = Ladder(
        spec.cycle.escalate_to_secretary_workdays, spec.cycle.escalate_to_admins_workdays
    )
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        if not calendar.is_workday(today):
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        month = Period.containing("monthly", today).key
        late = lateness(calendar, today)
        rows = await overdue(s, steps_due=_steps_due(ladder, calendar, today))
        instances_overdue = await count_overdue(s)
        community_group = {r.unit_id: r.group_key for r in rows}
        problems = [
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
            for p in await overdue_problems(s, now)
        ]
        ladder_run = _Run(env, s, ladder, now)
        async with Batches(s, now, posts_at_once) as posts:
            for rows_part in _by_communities(rows, part):
                cases = [
                    Case(
                        "instance",
                        r.id,
                        r.unit_id,
                        r.unit_short,
                        f"**{r.no}** {escape_markdown(r.title)}",
                        f"{r.due.month}月{r.due.day}日",
                        late(r.due),
                        r.period,
                        r.group_key,
                    )
                    for r in rows_part
                ]
                units = {c.unit_id for c in cases}
                # A unit's problems go with its tasks, into the same posts.
                cases += [c for c in problems if c.unit_id in units]
                await ladder_run.climb(cases, posts)
            await ladder_run.climb([c for c in problems if c.unit_id not in community_group], posts)
        queued = posts.count
        detail = (
            f"{instances_overdue + len(problems)} overdue; {ladder_run.taken} steps taken;"
            f" {queued} posts"
        )
        await record_detail(s, JOB, occurrence, detail)
    env.nudge()
    return True


def _by_communities(rows: Sequence[Overdue], part: int) -> Iterator[Sequence[Overdue]]:
    """``rows`` in parts of about ``part``, cut only where the community's group changes: the
    rows come by community, so a unit's rows, and its posts, stay in one part."""
    first = 0
    for i in range(part, len(rows)):
        if i - first >= part and rows[i].group_key != rows[i - 1].group_key:
            yield rows[first:i]
            first = i
    if first < len(rows):
        yield rows[first:]


class _Run:
    """One run's climb, a part of the cases at a time: what a part holds (its cases, their
    steps, the people to @-mention) is let go before the next is read."""

    def __init__(self, env: JobEnv, s: AsyncSession, ladder: Ladder, now: datetime) -> None:
        self.env, self.s, self.ladder, self.now = env, s, ladder, now
        spec = env.deployment.spec
        self.groups = {g.id: g for g in spec.groups}
        self.admin = self.groups.get(spec.committee.admin_group or "")
        self.taken = 0

    async def climb(self, cases: Sequence[Case], posts: Batches) -> None:
        if not cases:
            return
        s, groups = self.s, self.groups
        await posts.settle()  # the part before's last batch: the session is ours till we post
        leads = await lead_of(s, {c.unit_id for c in cases})
        # One read instead of a refused insert per case, step and day; one insert per
        # thousand steps instead of one each.
        done = await steps_taken(s, [(c.subject, c.id) for c in cases])
        due = [
            (case, step)
            for case in cases
            for step in self.ladder.steps(case.late)
            if (case.subject, case.id, step) not in done
        ]
        fresh = await take_steps(s, [(c.subject, c.id, step) for c, step in due], self.now)
        listings: list[tuple[int, str, str]] = []  # the negative list: unit, period, why
        # (unit, step, group) → its cases, in the order the posts go out.
        bundles: dict[tuple[int, int, str], list[Case]] = {}
        for case, step in due:
            if (case.subject, case.id, step) not in fresh:
                continue
            self.taken += 1
            if step == ADMINS:
                listings.append((case.unit_id, case.period, f"{case.what} 逾期{case.late}个工作日"))
                target = self.admin
            else:
                target = groups.get(case.group_key or "")
            if target is not None:
                bundles.setdefault((case.unit_id, step, target.id), []).append(case)
        people = await _mentioned(s, bundles, groups, leads)
        await put_on_negative_lists(s, listings, self.now)
        for (unit_id, step, target_id), bundled in bundles.items():
            target = groups[target_id]
            liaisons = people.get(("liaison", target.platform), {})
            mentions: Sequence[Mention] = ()
            if step == WARN:
                mentions = liaisons.get(unit_id, [])
            elif step == SECRETARY:
                lead = leads.get(unit_id)
                mentions = [
                    *people.get(("secretary", target.platform), {}).get(unit_id, []),
                    *(liaisons.get(lead, []) if lead and lead != unit_id else []),
                ]
            await posts.add(_post(self.env, target, bundled, step, mentions))


def _post(
    env: JobEnv, target: Group, cases: Sequence[Case], step: int, mentions: Sequence[Mention]
) -> Queued:
    body = env.renderer.render(
        "posts/supervise.md.j2",
        unit=cases[0].unit_short,
        cases=cases,
        has_tasks=any(c.subject == "instance" for c in cases),
        has_problems=any(c.subject == "problem" for c in cases),
        step=step,
        warn=WARN,
        secretary=SECRETARY,
        admins=ADMINS,
    )
    title = {WARN: "逾期预警", SECRETARY: "督办提醒", ADMINS: "督办升级"}[step]
    first = cases[0]
    return Queued(
        Outbound(body, title=title, mentions=tuple(mentions)),
        group_target(target),
        kind=f"{JOB}{step}",
        # Named after its first case: each (case, step) is taken once, so no other post, on
        # any day or run, can carry that key (a key per unit and day would swallow a second
        # run's post on the same day).
        dedupe_key=f"{JOB}:{first.subject}:{first.id}:{step}",
        coalesce=True,
    )


async def _mentioned(
    s: AsyncSession,
    bundles: Mapping[tuple[int, int, str], object],
    groups: Mapping[str, Group],
    leads: Mapping[int, int],
) -> dict[tuple[str, str], dict[int, list[Mention]]]:
    """Per (role, platform), the mentions of the units whose posts @-mention that role: the
    liaisons of units warned and of the leads of units at the secretary step, the secretaries
    of those units. Nobody else: on a heavy day that is tens of thousands of people."""
    wanted: dict[tuple[str, str], set[int]] = defaultdict(set)
    for unit_id, step, target_id in bundles:
        platform = groups[target_id].platform
        if step == WARN:
            wanted["liaison", platform].add(unit_id)
        elif step == SECRETARY:
            wanted["secretary", platform].add(unit_id)
            lead = leads.get(unit_id)
            if lead is not None and lead != unit_id:
                wanted["liaison", platform].add(lead)
    return {
        (role, platform): await mentions_for(s, ids, role, platform)
        for (role, platform), ids in wanted.items()
    }


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
