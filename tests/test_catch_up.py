"""Through restarts and downtime: a missed occurrence runs once on start, late; older misses and
occurrences that already ran do not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.app import CATCH_UP, DEPS, create_app
from bot.clock import SHANGHAI, FixedClock
from bot.deployment import load
from bot.models import JobRun, OutboxMessage
from bot.settings import Settings
from tests.configs import SAMPLE_CONFIG

DEC_1 = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)  # breakdown time, a Tuesday


async def start(aiohttp_client: Any, database_url: str, at: datetime) -> Any:
    """The bot started at `at` (SQLite file or PostgreSQL database kept between starts)."""
    settings = Settings(
        database_url=database_url, config=SAMPLE_CONFIG, delivery="console", console=True
    )
    app = create_app(settings, FixedClock(at), load(SAMPLE_CONFIG, env={}, live=False))
    return await aiohttp_client(app)


async def runs(client: Any) -> list[tuple[str, datetime, bool]]:
    deps = client.app[DEPS]
    async with deps.db.begin() as s:
        rows = (
            await s.execute(select(JobRun.job, JobRun.occurrence, JobRun.late).order_by(JobRun.id))
        ).all()
    return [(j, o, late) for j, o, late in rows]


async def wait_catch_up(client: Any) -> None:
    await client.app[CATCH_UP]  # it runs as a task beside the server
    await client.close()


async def test_down_at_nine_the_breakdown_runs_late_on_start(aiohttp_client, database_url) -> None:
    client = await start(aiohttp_client, database_url, DEC_1.replace(hour=11))
    await wait_catch_up(client)
    client = await start(aiohttp_client, database_url, DEC_1.replace(hour=11, minute=30))
    done = await runs(client)
    breakdown = [(o, late) for j, o, late in done if j == "breakdown"]
    assert breakdown == [(DEC_1, True)]  # once, for 09:00, marked late; the restart added none
    async with client.app[DEPS].db.begin() as s:
        body = await s.scalar(
            select(OutboxMessage.body).where(
                OutboxMessage.group_key == "g_c5", OutboxMessage.kind == "breakdown"
            )
        )
    assert "（补发）" in body["body"]
    assert ("remind", DEC_1, True) in done  # 工作日 9:00 missed as well
    # Today's 17:30 has not come; yesterday's, 17.5 hours ago, is within the grace.
    assert [o for j, o, _ in done if j == "inspect"] == [
        datetime(2026, 11, 30, 17, 30, tzinfo=SHANGHAI)
    ]
    await client.close()


async def test_misses_older_than_the_grace_stay_missed(aiohttp_client, database_url) -> None:
    client = await start(aiohttp_client, database_url, datetime(2026, 12, 3, 8, 0, tzinfo=SHANGHAI))
    await wait_catch_up(client)
    client = await start(aiohttp_client, database_url, datetime(2026, 12, 3, 8, 5, tzinfo=SHANGHAI))
    done = await runs(client)
    # Down since before Tuesday's 09:00 breakdown: 47 hours later it is past the 24-hour grace.
    assert all(j != "breakdown" for j, _, _ in done)
    # Wednesday's 17:30 inspection is within the grace: it runs, only the latest one.
    assert [o for j, o, _ in done if j == "inspect"] == [
        datetime(2026, 12, 2, 17, 30, tzinfo=SHANGHAI)
    ]
    await client.close()
