"""The lanes' heads the worker has looked up and not yet tried, oldest first.

With thousands of lanes queued (a province's monthly breakdown is 2,500 groups; every person
replied to is a lane of their own) a look per claim would read every head for every message
sent. So one look (ids only, at most ``claims.LOOK_LIMIT``) serves until its heads are used
up, and the claim that tries a remembered head confirms in the same statement that it still
leads its lane (``claims.lock``). Each lane has one head, so each look serves every waiting
lane once: lanes are served in turn, the one whose message waited longest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery import claims


class Heads:
    def __init__(self) -> None:
        self._queue: deque[int] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    async def look(self, session: AsyncSession, now: datetime, tried: Collection[int]) -> bool:
        """Remember the heads ready now, but those already ``tried`` in this pass; True when
        there may be more than one look returns."""
        ids = await claims.look(session, now)
        self._queue.extend(i for i in ids if i not in tried)
        return len(ids) >= claims.LOOK_LIMIT

    def take(self, n: int) -> list[int]:
        """Up to ``n`` remembered heads, oldest first."""
        return [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
