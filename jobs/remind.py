"""提示: before a deadline, each unreported instance is reminded in its group, @-mentioning the
unit's liaisons: once a few working days ahead, once on the day, never twice in a stage.

One outbox message per instance and stage, keyed by both, so no re-run repeats a reminder;
they are queued as mergeable, so a group's reminders go out as one post.

A province has a hundred thousand instances in the window. They are queued a part at a time,
each part in a transaction of its own, and only those not reminded yet in their stage are
rendered at all. On SQLite every callback's acceptance waits for the one writer, so no
transaction here holds it for long; the occurrence is claimed last, once every part is in.
A run that dies part-way is run again in full by the catch-up, and the keys keep what the
first run queued from going out twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.deployment.schema import Group
from bot.ledger.contacts import mentions_for
from bot.ledger.due import Coming, Window, coming, coming_due
from bot.messages import Mention, Outbound
from bot.outbox import Queued, enqueue_many, group_target, queued_already
from bot.workdays import WorkCalendar, load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, has_run, record_detail

JOB = "remind"
PART = 2000  # instances a transaction: a few tenths of a second of the writer


async def run(env: JobEnv, occurrence: datetime, *, part: int = PART) -> bool:
    ahead = env.deployment.spec.cycle.remind_ahead_workdays
    started = env.clock.now()
    today = occurrence.astimezone(SHANGHAI).date()
    groups = {g.id: g for g in env.deployment.spec.groups}
    queued = 0
    async with env.db.begin() as s:
        if await has_run(s, JOB, occurrence):
            return False
        calendar = await load_calendar(s)
    workday = calendar.is_workday(today)
    due = Window()
    if workday:
        async with env.db.reading() as s:
            due = await coming_due(s, today, calendar.add_workdays(today, ahead))
    left = _WorkdaysLeft(calendar, today)
    for first in range(0, len(due), part):
        async with env.db.begin() as s:
            # Only what was not reminded in its stage yet is read and rendered: on most days
            # that is the few deadlines just come within reach.
            keyed = {_key(i, day, today): i for i, day in due.part(first, part)}
            taken = await queued_already(s, list(keyed))
            rows = await coming(s, [i for key, i in keyed.items() if key not in taken])
            queued += await _remind(env, s, rows, today, left, groups)
        env.nudge()
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, env.clock.now(), started=started):
            return False
        detail = f"{queued} reminders of {len(due)} due" if workday else "not a working day"
        await record_detail(s, JOB, occurrence, detail)
    return True


async def _remind(
    env: JobEnv,
    s: AsyncSession,
    rows: Sequence[Coming],
    today: date,
    left: _WorkdaysLeft,
    groups: Mapping[str, Group],
) -> int:
    """Queue the reminders of ``rows``; how many were."""
    fresh = [(r, _stage(r.due, today)) for r in rows if r.group_key in groups]
    liaisons = await _liaisons(s, [r for r, _ in fresh], groups)
    posts = []
    for r, stage in fresh:
        group = groups[r.group_key]
        body = env.renderer.render("posts/remind.md.j2", row=r, stage=stage, left=left(r.due))
        mentions = tuple(liaisons[group.platform].get(r.unit_id, ()))
        posts.append(
            Queued(
                Outbound(body, title="截止提醒", mentions=mentions),
                group_target(group),
                kind=JOB,
                dedupe_key=_key(r.id, r.due, today),
                coalesce=True,
            )
        )
    await enqueue_many(s, posts, now=env.clock.now())
    return len(posts)


def _stage(due: date, today: date) -> str:
    return "due" if due == today else "ahead"


def _key(instance: int, due: date, today: date) -> str:
    return f"{JOB}:{instance}:{_stage(due, today)}"


async def _liaisons(
    s: AsyncSession, rows: Sequence[Coming], groups: Mapping[str, Group]
) -> dict[str, dict[int, list[Mention]]]:
    """Per platform, the liaisons of the units these rows remind there."""
    units: dict[str, set[int]] = {}
    for r in rows:
        units.setdefault(groups[r.group_key].platform, set()).add(r.unit_id)
    return {p: await mentions_for(s, ids, "liaison", p) for p, ids in units.items()}


class _WorkdaysLeft:
    """Working days from today to a deadline, counted once per deadline."""

    def __init__(self, calendar: WorkCalendar, today: date) -> None:
        self.calendar, self.today = calendar, today
        self.known: dict[date, int] = {}

    def __call__(self, due: date) -> int:
        if due not in self.known:
            self.known[due] = self.calendar.workdays_between(self.today, due)
        return self.known[due]
