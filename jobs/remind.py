"""提示: before a deadline, each unreported instance is reminded in its group, @-mentioning the
unit's liaisons: once a few working days ahead, once on the day, never twice in a stage.

One outbox message per instance and stage, keyed by both, so no re-run repeats a reminder;
they are queued as mergeable, so a group's reminders go out as one post.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import SHANGHAI
from bot.ledger.contacts import mentions_for
from bot.ledger.due import due_between
from bot.messages import Outbound
from bot.outbox import enqueue, group_target
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.runs import claim_occurrence, record_detail

JOB = "remind"


async def run(env: JobEnv, occurrence: datetime) -> bool:
    ahead = env.deployment.spec.cycle.remind_ahead_workdays
    now = env.clock.now()
    today = occurrence.astimezone(SHANGHAI).date()
    groups = {g.id: g for g in env.deployment.spec.groups}
    queued = 0
    async with env.db.begin() as s:
        if not await claim_occurrence(s, JOB, occurrence, now):
            return False
        calendar = await load_calendar(s)
        if not calendar.is_workday(today):
            await record_detail(s, JOB, occurrence, "not a working day")
            return True
        rows = await due_between(s, today, calendar.add_workdays(today, ahead))
        by_platform: dict[str, set[int]] = {}
        for r in rows:
            group = groups.get(r.group_key or "")
            if group is not None:
                by_platform.setdefault(group.platform, set()).add(r.unit_id)
        liaisons = {p: await mentions_for(s, ids, "liaison", p) for p, ids in by_platform.items()}
        for r in rows:
            group = groups.get(r.group_key or "")
            if group is None:
                continue
            stage = "due" if r.due == today else "ahead"
            left = calendar.workdays_between(today, r.due)
            body = env.renderer.render("posts/remind.md.j2", row=r, stage=stage, left=left)
            mentions = tuple(liaisons[group.platform].get(r.unit_id, ()))
            queued += await enqueue(
                s,
                Outbound(body, title="截止提醒", mentions=mentions),
                to=group_target(group),
                kind=JOB,
                dedupe_key=f"{JOB}:{r.instance.id}:{stage}",
                now=now,
                coalesce=True,
            )
        await record_detail(s, JOB, occurrence, f"{queued} reminders of {len(rows)} due")
    env.nudge()
    return True
