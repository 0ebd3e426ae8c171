"""Occurrences: each (job, scheduled time) is claimed once, in the transaction of its effects.

If the process dies mid-job the transaction rolls back, the claim with it, and the catch-up on
start runs the occurrence again; a job that committed never runs twice for the same time.
Every post a job enqueues also carries a per-period deduplication key, so even a job run by
hand for the same period cannot post twice. A job too large for one transaction (提示 at a
province's scale) writes in parts and claims in its last; its keys make the parts safe to
write again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import claim
from bot.models import JobRun

# A run this much after its scheduled time says so in what it posts.
LATE_AFTER = timedelta(minutes=10)


async def claim_occurrence(
    session: AsyncSession,
    job: str,
    occurrence: datetime,
    now: datetime,
    *,
    started: datetime | None = None,
) -> bool:
    """Claim the occurrence as done ``now``; ``started``: when the work began, for a job
    that claims after it."""
    return await claim(
        session,
        JobRun.__table__,
        {
            "job": job,
            "occurrence": occurrence,
            "started_at": started or now,
            "finished_at": now,
            "status": "done",
            "late": (started or now) - occurrence > LATE_AFTER,
            "detail": "",
        },
    )


async def has_run(session: AsyncSession, job: str, occurrence: datetime) -> bool:
    """Whether the occurrence is claimed already: a job that works in several transactions
    and claims in its last looks first, so that a second run does not redo the work."""
    found = await session.scalar(
        select(JobRun.id).where(JobRun.job == job, JobRun.occurrence == occurrence)
    )
    return found is not None


async def record_detail(session: AsyncSession, job: str, occurrence: datetime, detail: str) -> None:
    run = await session.scalar(
        select(JobRun).where(JobRun.job == job, JobRun.occurrence == occurrence)
    )
    if run is not None:
        run.detail = detail[:2000]


async def last_occurrence(session: AsyncSession, job: str) -> datetime | None:
    return await session.scalar(
        select(JobRun.occurrence)
        .where(JobRun.job == job)
        .order_by(JobRun.occurrence.desc())
        .limit(1)
    )
