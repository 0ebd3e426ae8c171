"""A cached platform access token: fetched once, shared, refreshed before it expires."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.adapters.base import DeliveryError
from bot.clock import Clock

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """One app's access token: fetched on first use, shared, refreshed before it expires.

    ``fetch`` returns ``(token, expires_in_seconds)``. Callers that arrive while a fetch is
    under way wait for that fetch instead of starting their own (gettoken is rate-limited).
    A token is replaced ``margin`` seconds before it expires, or halfway through its life
    when that is shorter, and ``invalidate`` drops it at once when the platform refuses it.
    """

    def __init__(self, fetch: Fetch, clock: Clock, *, margin: float = 300.0) -> None:
        self._fetch, self._clock, self._margin = fetch, clock, margin
        self._token = ""
        self._refresh_at = 0.0
        self._pending: asyncio.Future[str] | None = None

    def __repr__(self) -> str:
        return f"TokenCache(cached={bool(self._token)})"

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def get(self) -> str:
        if self._token and self._now() < self._refresh_at:
            return self._token
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
            # Retrieve the outcome even if every waiter was cancelled.
            self._pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        # shield: one caller giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(self._pending)

    async def _refresh(self) -> str:
        try:
            started = self._now()
            token, expires_in = await self._fetch()
            if not token or expires_in <= 0:
                raise DeliveryError("token endpoint gave no usable token", retryable=True)
            self._token = token
            self._refresh_at = started + expires_in - min(self._margin, expires_in / 2)
            return token
        finally:
            self._pending = None

    def invalidate(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one (a newer one stays)."""
        if token and token == self._token:
            self._token = ""
