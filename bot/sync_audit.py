"""What a configuration sync says it changed: counts to its caller, each change to the audit log.

A few changes of a kind are written one row each with their before and after, as they always
were. A mass change — a province's first apply creates 200,000 people, a renaming touches
every unit — goes into summary rows of at most `BATCH` entities each: the count in all and the
keys, and for updates each key's before and after. An admin still sees every change, and no
row holds 200,000 entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit

ACTOR = "config"
DETAIL_LIMIT = 200  # changes of one kind written a row each; more are summarised
BATCH = 500  # entities per summary row
_WRITE_TOGETHER = 20  # summary rows per statement

Change = tuple[str, dict[str, Any] | None, dict[str, Any] | None]  # key, before, after
T = TypeVar("T")


@dataclass
class SyncReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, entity: str, n: int = 1) -> None:
        if n:
            bucket = getattr(self, kind)
            bucket[entity] = bucket.get(entity, 0) + n

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def summary(self) -> str:
        parts = [
            f"{label} {entity} {n}"
            for label, bucket in (
                ("新增", self.created),
                ("更新", self.updated),
                ("停用", self.removed),
            )
            for entity, n in sorted(bucket.items())
        ]
        return "；".join(parts) or "无变化 (no changes)"


async def write(
    session: AsyncSession,
    now: datetime,
    entity: str,
    action: str,
    total: int,
    changes: Iterable[Change] | AsyncIterable[Change],
    *,
    limit: int = DETAIL_LIMIT,
    batch: int = BATCH,
) -> None:
    """`total` changes of `entity` by `action` ("person.update"), read from `changes` lazily:
    a mass change is never held in memory whole. A caller may write the `total` in parts,
    each call with its own `changes`."""
    if total == 0:
        return
    if total <= limit:
        async for every in batches(changes, limit):  # one part: there are no more than that
            await audit.record_many(
                session, at=now, actor=ACTOR, action=action, entity=entity, changes=every
            )
        return
    rows = -(-total // batch)
    detail = f"共 {total} 个，分 {rows} 条记录 ({total} in all, in {rows} entries)"
    summaries: list[Change] = []
    async for part in batches(changes, batch):
        if action.endswith(".update"):
            summaries.append(("*", {k: b for k, b, _ in part}, {k: a for k, _, a in part}))
        else:
            summaries.append(("*", None, {"count": total, "keys": [k for k, _, _ in part]}))
        if len(summaries) == _WRITE_TOGETHER:
            await _summaries(session, now, entity, action, summaries, detail)
            summaries = []
    await _summaries(session, now, entity, action, summaries, detail)


async def _summaries(
    session: AsyncSession,
    now: datetime,
    entity: str,
    action: str,
    summaries: list[Change],
    detail: str,
) -> None:
    if summaries:
        await audit.record_many(
            session,
            at=now,
            actor=ACTOR,
            action=action,
            entity=entity,
            changes=summaries,
            detail=detail,
        )


async def batches(items: Iterable[T] | AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    """Lists of at most `size` items, read as needed."""
    part: list[T] = []
    if isinstance(items, AsyncIterable):
        async for item in items:
            part.append(item)
            if len(part) == size:
                yield part
                part = []
    else:
        for item in items:
            part.append(item)
            if len(part) == size:
                yield part
                part = []
    if part:
        yield part


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
