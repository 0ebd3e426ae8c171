"""The access-token cache: one fetch shared by all, refreshed early, dropped when refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.adapters.base import DeliveryError
from bot.adapters.tokens import TokenCache
from bot.clock import FixedClock


class CountingFetch:
    """Issues t1, t2, … with a fixed lifetime; ``gate`` holds fetches until set."""

    def __init__(self, expires_in: float = 7200.0) -> None:
        self.calls = 0
        self.expires_in = expires_in
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def __call__(self) -> tuple[str, float]:
        self.calls += 1
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return f"t{self.calls}", self.expires_in


async def test_one_fetch_serves_many_calls(clock: FixedClock) -> None:
    fetch = CountingFetch()
    cache = TokenCache(fetch, clock)
    assert [await cache.get() for _ in range(5)] == ["t1"] * 5
    assert fetch.calls == 1


async def test_refreshes_five_minutes_before_expiry(clock: FixedClock) -> None:
    fetch = CountingFetch()
    cache = TokenCache(fetch, clock)
    await cache.get()
    clock.at += timedelta(seconds=7200 - 301)
    assert await cache.get() == "t1"
    clock.at += timedelta(seconds=2)
    assert await cache.get() == "t2"
    assert fetch.calls == 2


async def test_short_lived_token_is_refreshed_before_it_expires(clock: FixedClock) -> None:
    fetch = CountingFetch(expires_in=60)
    cache = TokenCache(fetch, clock)
    await cache.get()
    clock.at += timedelta(seconds=29)
    assert await cache.get() == "t1"
    clock.at += timedelta(seconds=2)
    assert await cache.get() == "t2"


async def test_concurrent_callers_share_one_fetch(clock: FixedClock) -> None:
    fetch = CountingFetch()
    fetch.gate.clear()
    cache = TokenCache(fetch, clock)
    waiters = [asyncio.create_task(cache.get()) for _ in range(10)]
    await asyncio.sleep(0)
    fetch.gate.set()
    assert await asyncio.gather(*waiters) == ["t1"] * 10
    assert fetch.calls == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(clock: FixedClock) -> None:
    fetch = CountingFetch()
    fetch.gate.clear()
    cache = TokenCache(fetch, clock)
    first, second = asyncio.create_task(cache.get()), asyncio.create_task(cache.get())
    await asyncio.sleep(0)
    first.cancel()
    fetch.gate.set()
    assert await second == "t1"
    assert first.cancelled()
    assert fetch.calls == 1


async def test_invalidate_drops_only_the_current_token(clock: FixedClock) -> None:
    fetch = CountingFetch()
    cache = TokenCache(fetch, clock)
    await cache.get()
    cache.invalidate("t1")
    assert await cache.get() == "t2"
    cache.invalidate("t1")  # a late caller reporting the old token changes nothing
    assert await cache.get() == "t2"
    assert fetch.calls == 2


async def test_a_failed_fetch_reaches_every_waiter_and_the_next_call_retries(
    clock: FixedClock,
) -> None:
    fetch = CountingFetch()
    fetch.gate.clear()
    fetch.fail_with = DeliveryError("down", retryable=True, code="timeout")
    cache = TokenCache(fetch, clock)
    waiters = [asyncio.create_task(cache.get()) for _ in range(3)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, DeliveryError) for r in results)
    assert fetch.calls == 1
    fetch.fail_with = None
    assert await cache.get() == "t2"


async def test_an_unusable_answer_is_an_error(clock: FixedClock) -> None:
    async def fetch() -> tuple[str, float]:
        return "", 7200

    with pytest.raises(DeliveryError, match="no usable token"):
        await TokenCache(fetch, clock).get()


async def test_repr_hides_the_token(clock: FixedClock) -> None:
    cache = TokenCache(CountingFetch(), clock)
    await cache.get()
    assert "t1" not in repr(cache)
