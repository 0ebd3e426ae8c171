"""What the outbound long connections (DingTalk Stream, the WeCom 智能机器人) share when a
connection drops: how long to wait, and waiting in a way stop() can cut short."""

from __future__ import annotations

import asyncio
import random
from contextlib import suppress


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """base·2ⁿ seconds capped at `cap`, plus up to `base` of jitter so that many clients
    restarted together do not reconnect in step."""
    return min(cap, base * 2.0 ** min(failures, 32)) + rng.uniform(0, base)


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stopping` is set meanwhile."""
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
