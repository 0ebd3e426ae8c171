"""GET /metrics: Prometheus text that parses, with counts that move as messages go out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.clock import FixedClock
from bot.db import Database
from bot.delivery import DeliveryWorker
from bot.deployment import load
from bot.metrics import METRICS, Metrics, metrics_view
from bot.senders import Senders
from tests.configs import ENV, mini, write
from tests.test_delivery import ADMINS, WEBHOOK, Rig, rigged


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def served(rig: Rig, aiohttp_client: Any) -> Any:
    app = web.Application()
    app[METRICS] = rig.metrics
    app.router.add_get("/metrics", metrics_view)
    return await aiohttp_client(app)


async def test_metrics_parse_and_move(
    database_url: str, aiohttp_server: Any, aiohttp_client: Any, tmp_path: Path, clock: FixedClock
) -> None:
    async with rigged(database_url, aiohttp_server, tmp_path, clock) as rig:
        client = await served(rig, aiohttp_client)
        for i in range(3):
            await rig.queue("g_admins", f"通知 {i}")
        await rig.queue("g_gone", "发往失效群")
        before = await scrape(client)
        assert value(before, "duban_outbox_depth", channel="g_admins", status="pending") == 3
        assert value(before, "duban_outbox_sent_total", channel="g_admins") == 0

        rig.wecom.fail_next(1, status=500, path=WEBHOOK)
        await rig.drain()
        rig.metrics.count_inbound("wecom", "accepted", 2)
        rig.metrics.count_inbound("wecom", "duplicate")
        rig.metrics.count_inbound("dingtalk", "refused")
        after = await scrape(client)

    assert len(rig.wecom.texts(ADMINS)) == 4  # three notices and the alert about g_gone
    assert value(after, "duban_outbox_depth", channel="g_admins", status="pending") == 0
    assert value(after, "duban_outbox_depth", channel="g_gone", status="dead") == 1
    assert value(after, "duban_outbox_sent_total", channel="g_admins") == 4
    assert value(after, "duban_outbox_retried_total", channel="g_admins") == 1
    assert value(after, "duban_outbox_dead_total", channel="g_gone") == 1
    assert value(after, "duban_outbox_send_seconds_count", platform="wecom") == 6
    assert value(after, "duban_inbound_total", platform="wecom", outcome="accepted") == 2
    assert value(after, "duban_inbound_total", platform="wecom", outcome="duplicate") == 1
    assert value(after, "duban_inbound_total", platform="dingtalk", outcome="refused") == 1


async def test_a_scrape_answers_even_when_the_database_is_away(
    tmp_path: Path, aiohttp_client: Any, clock: FixedClock, caplog: Any
) -> None:
    metrics = Metrics()
    away = Database(f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    deployment = load(write(tmp_path / "conf", mini()), env=ENV)
    DeliveryWorker(away, Senders({}), deployment, clock, metrics=metrics)
    metrics.count_inbound("wecom", "accepted")
    app = web.Application()
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_view)
    try:
        samples = await scrape(await aiohttp_client(app))
    finally:
        await away.dispose()
    assert value(samples, "duban_inbound_total", platform="wecom", outcome="accepted") == 1
    assert "refreshing a gauge failed" in caplog.text
