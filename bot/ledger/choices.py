"""Questions the bot asked and awaits a numbered answer to: one per person and chat, short-lived.

A choice is conversation state, not the ledger's record, but it is written in the message's
transaction like everything else, so an answer can never act on a question that was rolled back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.models import PendingChoice

TTL = timedelta(minutes=10)


async def ask(
    session: AsyncSession,
    *,
    platform: str,
    chat_id: str,
    user_id: str,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    actor: str,
) -> PendingChoice:
    """Store the question, replacing any earlier one of the person in the chat."""
    choice = await _find(session, platform, chat_id, user_id)
    if choice is None:
        choice = PendingChoice(platform=platform, chat_id=chat_id, user_id=user_id)
        session.add(choice)
    choice.kind, choice.payload, choice.expires_at = kind, payload, now + TTL
    await session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="choice.ask",
        entity="pending_choice",
        key=str(choice.id),
        after={"kind": kind, "options": payload.get("ids", [])},
    )
    return choice


async def waiting(
    session: AsyncSession, *, platform: str, chat_id: str, user_id: str, kind: str, now: datetime
) -> PendingChoice | None:
    """The person's open question of `kind` in the chat, unless it has expired.

    An expired row stays until the person's next question replaces it: at most one per person
    and chat, and deleting it here would be rolled back with the unanswered message anyway."""
    choice = await _find(session, platform, chat_id, user_id)
    if choice is None or choice.kind != kind or choice.expires_at <= now:
        return None
    return choice


async def settle(session: AsyncSession, choice: PendingChoice) -> None:
    await session.delete(choice)
    await session.flush()


async def _find(
    session: AsyncSession, platform: str, chat_id: str, user_id: str
) -> PendingChoice | None:
    return await session.scalar(
        select(PendingChoice).where(
            PendingChoice.platform == platform,
            PendingChoice.chat_id == chat_id,
            PendingChoice.user_id == user_id,
        )
    )
