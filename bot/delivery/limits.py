"""Spending each robot's 20 messages a minute: a rolling window per rate key, and what one
message costs in requests.

The window matches the platforms' (and the fakes'): a request made at t counts until t + 60 s.
Every request counts, failed ones too (WeCom counts failed sends), so the worker charges a
message's requests when it claims it, before it knows how the send ends. A message's cost is
estimated from its size and the channel's per-request budget; the budgets are below the
platforms' limits so the estimate errs on the side of more requests, never fewer.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from datetime import datetime, timedelta

from bot.messages import Outbound

WINDOW = timedelta(seconds=60)
DEFAULT_RATE = 20  # per robot per minute (WeCom 45009, DingTalk 130101 beyond it)

# Bytes of Markdown that surely fit in one request, per channel type: the platform's limit
# less room for split markers, the @-line and JSON escaping (DingTalk's msgParam is JSON in
# JSON). Coalesced posts are kept within these, so each goes out as one request.
_BUDGET = {
    "wecom_webhook": 3900,  # markdown 4096 bytes
    "wecom_appchat": 1900,  # app text and markdown 2048
    "wecom_app_user": 1900,
    "wecom_aibot": 19000,  # 20480
    "wecom_response_url": 19000,
    "dingtalk_openapi": 12000,  # msgParam 15000
    "dingtalk_user": 12000,
    "dingtalk_webhook": 16000,  # body 20000
    "dingtalk_session": 16000,
    "console": 12000,
}
_TEXT_BUDGET = {"wecom_webhook": 1900}  # robot text is 2048, half of its Markdown
_IMAGE_SENT = frozenset(
    {"wecom_webhook", "dingtalk_webhook", "dingtalk_session", "dingtalk_openapi", "dingtalk_user"}
)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def part_budget(channel_type: str, fmt: str = "markdown") -> int:
    """Bytes of body that go out in one request on this channel."""
    if fmt == "text" and channel_type in _TEXT_BUDGET:
        return _TEXT_BUDGET[channel_type]
    return _BUDGET.get(channel_type, 1900)


def requests_for(message: Outbound, channel_type: str) -> int:
    """How many requests sending ``message`` takes (an upper estimate)."""
    names = sum(_size(m.name) + 2 for m in message.mentions)
    parts = max(
        1, math.ceil((_size(message.body) + names) / part_budget(channel_type, message.format))
    )
    notified = any(m.user_id or m.mobile for m in message.mentions)
    if channel_type == "wecom_webhook" and message.format == "markdown" and notified:
        parts += 1  # Markdown cannot notify: a short text with the mention lists follows
    if message.image is not None and channel_type in _IMAGE_SENT:
        parts += 1
    if message.file is not None and channel_type == "wecom_webhook":
        parts += 1  # the file message (its upload is not a message)
    return parts


class RollingLimiter:
    """At most ``limit`` requests per key in any ``window``, on the caller's clock.

    A message costing more than the whole limit is let through once the window is empty (it
    could never go otherwise); the platform then refuses the surplus and the parts resume.
    """

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.window = window
        self._hits: dict[str, deque[datetime]] = defaultdict(deque)
        self._sweep_at = 1024  # keys held before the idle ones are forgotten
        self._swept: datetime | None = None

    def _live(self, key: str, now: datetime) -> deque[datetime]:
        hits = self._hits[key]
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _forget_idle(self, now: datetime) -> None:
        """Every private chat replied to is a key of its own: drop those whose window is empty,
        so a long-running process does not keep one for every person who ever wrote. A look
        over the keys once a window, or when they have doubled since the last."""
        if len(self._hits) < self._sweep_at and self._swept and now - self._swept < self.window:
            return
        self._swept, edge = now, now - self.window
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= edge]:
            del self._hits[key]
        self._sweep_at = max(1024, 2 * len(self._hits))

    def take(self, key: str, limit: int, cost: int, now: datetime) -> bool:
        """Charge ``cost`` requests to ``key`` if they fit now; False (nothing charged) if not."""
        self._forget_idle(now)
        hits = self._live(key, now)
        cost = max(1, min(cost, limit))
        if len(hits) + cost > limit:
            return False
        hits.extend([now] * cost)
        return True

    def refund(self, key: str, limit: int, cost: int, now: datetime) -> None:
        """Undo a ``take`` whose message was not sent after all (claimed elsewhere)."""
        hits = self._hits[key]
        for _ in range(max(1, min(cost, limit))):
            if hits and hits[-1] == now:
                hits.pop()

    def settle(
        self,
        key: str,
        limit: int,
        cost: int,
        charged: datetime,
        now: datetime,
        made: int | None = None,
    ) -> None:
        """The requests of a ``take`` at ``charged`` had been made by ``now``: count them from
        ``now``. The platform's window runs from each request, and a post of many parts (or a
        slow platform) sends its last one seconds after the claim; counted from the claim, the
        window would free early and the next post would meet 45009/130101. ``made``: how many
        requests there really were, when known (a send that failed part-way); the rest of the
        charge is given back."""
        if now < charged:
            return
        hits, moved = self._hits[key], 0
        for _ in range(max(1, min(cost, limit))):
            if hits and hits[-1] == charged:
                hits.pop()
                moved += 1
        hits.extend([now] * (moved if made is None else min(moved, max(made, 0))))

    def free_at(self, key: str, limit: int, cost: int, now: datetime) -> datetime:
        """When ``cost`` requests will fit (now, if they fit already)."""
        hits = self._live(key, now)
        excess = len(hits) + max(1, min(cost, limit)) - limit
        return now if excess <= 0 else hits[excess - 1] + self.window

    def used(self, key: str, now: datetime) -> int:
        return len(self._live(key, now))

    @property
    def held(self) -> int:
        """How many keys it keeps a window for."""
        return len(self._hits)
