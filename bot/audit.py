"""The audit log: every change and command, written in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

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
    """An entry for the caller's transaction. Entries wait in the session and are written
    together when it commits, in one statement rather than an ORM object and a flush each:
    nothing reads the log back inside the transaction that writes it."""
    entry = (at, actor, action, entity, key, before, after, detail)
    session.info.setdefault(_PENDING, []).append(entry)


_PENDING = "audit_pending"
_TABLE = cast(Table, AuditEntry.__table__)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.execute(insert(_TABLE), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])


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
    # What `record` holds goes first: the log keeps the order things happened in.
    await session.run_sync(_write_pending)
    rows = (
        (at, actor, action, entity, key, before, after, detail) for key, before, after in changes
    )
    await insert_rows(session, _TABLE, _COLUMNS, rows)
