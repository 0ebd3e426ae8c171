"""Bind requests, the asking side: someone the bot does not know asks to act for a unit.

Admins decide (批准/拒绝) elsewhere; a person has at most one pending request at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.models import BindRequest


async def pending_request_for(
    session: AsyncSession, platform: str, user_id: str
) -> BindRequest | None:
    return await session.scalar(
        select(BindRequest)
        .where(
            BindRequest.platform == platform,
            BindRequest.user_id == user_id,
            BindRequest.status == "pending",
        )
        .order_by(BindRequest.id.desc())
        .limit(1)
    )


async def request_binding(
    session: AsyncSession,
    *,
    platform: str,
    user_id: str,
    name: str,
    unit_id: int,
    now: datetime,
    actor: str,
) -> BindRequest:
    request = BindRequest(
        platform=platform,
        user_id=user_id,
        name=name[:64],
        unit_id=unit_id,
        status="pending",
        requested_at=now,
    )
    session.add(request)
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="bind.request",
        entity="bind_request",
        key=str(request.id),
        after={"platform": platform, "user_id": user_id, "name": name[:64], "unit": unit_id},
    )
    return request
