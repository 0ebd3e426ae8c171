"""The lanes' heads the worker has looked up and not yet tried, fairest first.

Looking the heads up reads one row per lane; with thousands of lanes queued (a province's
monthly breakdown is 2,500 groups) a look per claim would read every head for every message
sent. So one look serves until its heads are used up, and before a remembered head is claimed
one query confirms it still leads its lane: an admin may have re-queued an older message of
that chat since (重发), and that one goes first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.delivery import claims
from bot.models import OutboxMessage as Row

Lane = tuple[str, str]  # (platform, chat_id)


class Heads:
    def __init__(self) -> None:
        self._queue: deque[Row] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def remember(self, heads: Sequence[Row], served: Callable[[Lane], int]) -> None:
        """Heads just looked up; the lanes served longest ago come first."""
        self._queue.extend(sorted(heads, key=lambda h: (served((h.platform, h.chat_id)), h.id)))

    async def next(self, session: AsyncSession, n: int) -> list[Row]:
        """Up to ``n`` remembered heads, each still the oldest live row of its lane."""
        taken = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
        if not taken:
            return []
        stmt = (
            select(Row.platform, Row.chat_id, func.min(Row.id))
            .where(Row.status.in_(claims.LIVE), Row.chat_id.in_({h.chat_id for h in taken}))
            .group_by(Row.platform, Row.chat_id)
        )
        oldest = {(p, c): i for p, c, i in await session.execute(stmt)}
        return [h for h in taken if oldest.get((h.platform, h.chat_id)) == h.id]

    def put_back(self, heads: Sequence[Row]) -> None:
        """Heads taken but not tried, to be tried first next time."""
        self._queue.extendleft(reversed(heads))
