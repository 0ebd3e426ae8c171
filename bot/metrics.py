"""Prometheus metrics, one registry per app (no process globals), served at GET /metrics.

Counters move where things happen (the delivery worker, the webhook route, the inbox); the
queue depth and the inbox's set-aside messages are read from the database at scrape time, so
they are right whichever instance queued, sent or set aside the rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

InboundOutcome = str  # "accepted" | "duplicate" | "refused"
Refresh = Callable[[], Awaitable[None]]
SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inbound = Counter(
            "duban_inbound", "Inbound callbacks and messages", ["platform", "outcome"], registry=r
        )
        self.sent = Counter("duban_outbox_sent", "Messages delivered", ["channel"], registry=r)
        self.retried = Counter(
            "duban_outbox_retried", "Sends that failed and will be retried", ["channel"], registry=r
        )
        self.dead = Counter(
            "duban_outbox_dead", "Messages given up as undeliverable", ["channel"], registry=r
        )
        self.send_seconds = Histogram(
            "duban_outbox_send_seconds",
            "Time one send took, all its parts",
            ["platform"],
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.depth = Gauge(
            "duban_outbox_depth", "Messages not yet sent", ["channel", "status"], registry=r
        )
        self.inbox_set_aside = Gauge(
            "duban_inbox_set_aside",
            "Inbound messages set aside after failed handlings (`duban inbox list`)",
            registry=r,
        )
        self._inbound: dict[tuple[str, str], Counter] = {}
        self._depth_seen: set[tuple[str, str]] = set()
        self._refreshers: list[Refresh] = []

    def count_inbound(self, platform: str, outcome: InboundOutcome, n: int = 1) -> None:
        if n:
            # Once per callback: `labels()` checks and locks (~5 µs), the child it returns not.
            key = (platform, outcome)
            child = self._inbound.get(key)
            if child is None:
                child = self._inbound[key] = self.inbound.labels(platform=platform, outcome=outcome)
            child.inc(n)

    def set_depth(self, counts: Mapping[tuple[str, str], int]) -> None:
        # A channel that emptied reads 0 rather than vanishing from the graphs.
        for channel, status in self._depth_seen | set(counts):
            self.depth.labels(channel=channel, status=status).set(counts.get((channel, status), 0))
        self._depth_seen |= set(counts)

    def set_inbox_set_aside(self, n: int) -> None:
        self.inbox_set_aside.set(n)

    def on_scrape(self, refresh: Refresh) -> None:
        """Run ``refresh`` before each scrape (it sets gauges from the database)."""
        self._refreshers.append(refresh)

    async def render(self) -> bytes:
        for refresh in self._refreshers:
            try:
                await refresh()
            except Exception:  # a scrape still answers with the counters it has
                log.warning("metrics: refreshing a gauge failed", exc_info=True)
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def metrics_view(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text format."""
    body = await request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
