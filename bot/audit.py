"""The audit log: every change and command, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulk import insert_rows
from bot.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    key: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
) -> None:
    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action=action,
            entity=entity,
            entity_key=key,
            before=before,
            after=after,
            detail=detail,
        )
    )


Change = tuple[str, dict[str, Any] | None, dict[str, Any] | None]  # key, before, after

_COLUMNS = ("at", "actor", "action", "entity", "entity_key", "before", "after", "detail")


async def record_many(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    changes: Sequence[Change],
    detail: str = "",
) -> None:
    """``record`` for many entities changed alike (a job marking thousands of instances), in
    a few statements instead of an ORM object each."""
    rows = (
        (at, actor, action, entity, key, before, after, detail) for key, before, after in changes
    )
    await insert_rows(session, cast(Table, AuditEntry.__table__), _COLUMNS, rows)
