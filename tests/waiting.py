"""Short bounded polling, for what no event announces: a reconnect that happens on its own, a
log line, a request another task makes. Never for a schedule: time goes through the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

POLL = 0.005  # seconds between looks


async def until(
    condition: Callable[[], bool], seconds: float = 5.0, what: str = "condition"
) -> None:
    """Return once ``condition()`` holds; fail the test after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL)
