"""Bringing the ledger up to date on start: schema first, then the configuration."""

from __future__ import annotations

import logging

from bot import schema
from bot.clock import Clock
from bot.db import Database
from bot.deployment import Loaded
from bot.sync import SyncReport, sync

log = logging.getLogger(__name__)


class SchemaOutdated(RuntimeError):
    pass


async def prepare_database(db: Database, auto_migrate: bool) -> None:
    if await schema.is_current(db.engine):
        return
    if not auto_migrate:
        raise SchemaOutdated(
            "数据库结构不是最新版本，请先运行 `duban db upgrade` "
            "(the database schema is outdated; run `duban db upgrade`)"
        )
    before = await schema.current_revision(db.engine)
    await schema.upgrade(db.engine)
    log.info("schema upgraded from %s to %s", before or "empty", schema.head_revision())


async def apply_config(db: Database, deployment: Loaded, clock: Clock) -> SyncReport:
    async with db.begin() as session:
        report = await sync(session, deployment.spec, clock.now())
    log.info("configuration applied: %s", report.summary())
    return report


async def materialise_current(db: Database, clock: Clock) -> int:
    """This month's instances, so a bot started mid-month can answer 本月任务 at once."""
    from bot.duerules import Period
    from bot.ledger.instances import materialise
    from bot.workdays import load_calendar

    now = clock.now()
    async with db.begin() as session:
        calendar = await load_calendar(session)
        created = await materialise(
            session,
            Period.containing("monthly", now.date()),
            now=now,
            is_workday=calendar.is_workday,
        )
    if created:
        log.info("materialised %d task instances for %s", created, now.strftime("%Y-%m"))
    return created
