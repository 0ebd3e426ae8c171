"""Bringing the ledger up to date on start: schema first, then the configuration."""

from __future__ import annotations

import logging

from bot import schema
from bot.clock import Clock
from bot.db import Database
from bot.deployment import Loaded
from bot.memory import give_back_freed_memory
from bot.sync import SyncReport, applied_mark, last_applied, mark_applied, sync, sync_plan

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
    log.info("schema upgraded from %s to %s", before or "empty", schema.HEAD)


async def apply_config(
    db: Database, deployment: Loaded, clock: Clock, *, full: bool = False
) -> SyncReport:
    """Sync the configuration into the database.

    On a start (`full` False) with the very files last applied in full, under the same schema,
    only the plan is synced: admins change tasks by chat, and a start has always brought the
    configured ones back. Everything else only the configuration writes, and comparing a
    province's 200,000 people again would find nothing. `duban config apply` is `full`.
    """
    now = clock.now()
    mark = applied_mark(deployment.digest, schema.HEAD) if deployment.digest else ""
    async with db.begin() as session:
        if not full and mark and await last_applied(session) == mark:
            report = await sync_plan(session, deployment.spec, now)
            log.info(
                "configuration unchanged since it was last applied (%s…); plan: %s",
                deployment.digest[:12],
                report.summary(),
            )
            return report
        report = await sync(session, deployment.spec, now)
        if mark:
            await mark_applied(session, mark, now)
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
    give_back_freed_memory()  # the last step of start-up: its working set is garbage now
    return created
