"""PostgreSQL's planner statistics for a table that a burst fills faster than autovacuum looks.

Autovacuum gathers a table's statistics in rounds a minute apart (``autovacuum_naptime``).
A table that grows from nothing within that minute, the inbox's ``inbound_seen`` in a new
deployment's first burst of callbacks, has none meanwhile, and the planner then guesses that
``platform = $1`` and ``handled_at IS NULL`` each match one row in two hundred. On 60,000 rows
it marked 50 ids handled by walking a platform's every unhandled row through a bitmap: 15–40 ms
of the server's time a batch instead of 0.3, on the two cores duban shares with it.

``Growth`` runs ANALYZE in the background each time the rows this process wrote into the table
have doubled since the last: a dozen times in a process's life, after which autovacuum's rounds
keep up. SQLite plans without such statistics; there it does nothing.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text

from bot.db import Database

log = logging.getLogger(__name__)

FIRST = 1000  # rows written before the first ANALYZE: below it any plan is quick


class Growth:
    def __init__(self, db: Database, table: str, first: int = FIRST) -> None:
        self.db, self.table = db, table
        self._on = db.dialect == "postgresql"
        self._written = 0
        self._next = first
        self._task: asyncio.Task[None] | None = None
        self.analyzed = 0  # ANALYZE runs finished

    def wrote(self, rows: int) -> None:
        """``rows`` more were written (committed or about to be)."""
        if not self._on:
            return
        self._written += rows
        if self._written >= self._next and self._task is None:
            self._next = 2 * self._written
            self._task = asyncio.create_task(self._analyze())

    async def _analyze(self) -> None:
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(text(f"ANALYZE {self.table}"))
                await conn.commit()
            self.analyzed += 1
        except Exception as e:  # not the table's owner, or the server away: autovacuum's turn
            log.warning("ANALYZE %s failed: %s; left to autovacuum", self.table, type(e).__name__)
            self._on = False
        finally:
            self._task = None

    async def wait(self) -> None:
        """Let the ANALYZE in flight finish: on shutdown, and in tests."""
        if (task := self._task) is not None:
            await asyncio.gather(task, return_exceptions=True)
