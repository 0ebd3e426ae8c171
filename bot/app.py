"""The aiohttp application: lifespan wiring and the operational routes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bot import inbox_admin, schema
from bot.adapters.dingtalk_stream import StreamClient
from bot.adapters.wecom_aibot_ws import AibotConnection, WsBotTransport
from bot.clock import Clock
from bot.console import (
    ConsoleFeed,
    ConsoleSender,
    add_console_routes,
    showing_inbound,
    showing_inbound_many,
)
from bot.console.roster import Roster
from bot.dashboard import DASHBOARD, Dashboard, add_dashboard_routes
from bot.db import Database
from bot.delivery import DeliveryWorker
from bot.deployment import Loaded, load
from bot.deps import Deps
from bot.dispatch import Dispatcher, outbox_poster
from bot.drill import process_clock, scheduler_for
from bot.duties import Duties, lead
from bot.files import FILES, FileServer, add_file_routes, file_path, store_file
from bot.inbound import ORPHANED_AFTER, Dispatch, Inbox
from bot.leader import Leadership, startup_lock
from bot.links import LINKS, Links, link_secret
from bot.memory import QuietTrim, giving_back
from bot.messages import Inbound
from bot.metrics import METRICS, Metrics, metrics_view
from bot.platforms import robot_names, webhook_adapters
from bot.render import Renderer
from bot.scheduling import SCHEDULING, CalendarHolder, Scheduling
from bot.senders import build_senders
from bot.settings import Settings
from bot.startup import apply_config, materialise_current, prepare_database
from bot.web import ADAPTERS, INBOX, add_routes
from bot.workdays import load_calendar
from jobs.env import JobEnv
from jobs.registry import BY_NAME

log = logging.getLogger(__name__)
DEPS = web.AppKey("deps", Deps)
# Missed occurrences run after start, beside the server; tests await it.
CATCH_UP = web.AppKey("catch_up", asyncio.Task[list[str]])
# The collector's youngest generation, in objects. CPython's 700 made it run 30-70 times a
# second under a burst of callbacks (each request's objects live until its id is stored);
# at this size it runs a few times, and a burst's answers cost 7-9% less CPU.
YOUNG_GENERATION = 20_000
# /readyz answers within this, database or not: a load balancer's probe gives up sooner.
READY_WITHIN = 5.0


@dataclass(frozen=True)
class ConsoleParts:
    feed: ConsoleFeed
    roster: Roster


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    deployment: Loaded | None = None,
    dispatch: Dispatch | None = None,
) -> web.Application:
    clock = clock or process_clock(settings)
    full = deployment or load(settings.config, live=settings.delivery == "platform")
    # The server keeps the configuration without its people: start-up syncs them into the
    # database, the console's roster packs them, and the lifespan then lets them go.
    loaded, to_sync = full.without_people(), [full]
    del full
    app = web.Application(client_max_size=1024 * 1024)
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", metrics_view)
    add_routes(app)
    add_file_routes(app)
    add_dashboard_routes(app)
    console: ConsoleParts | None = None
    if settings.console:
        # Routes, middlewares and shutdown signals freeze before the lifespan runs.
        console = ConsoleParts(ConsoleFeed(clock), Roster())
        add_console_routes(app, console.feed, loaded, console.roster)
    app.cleanup_ctx.append(partial(_lifespan, settings, clock, loaded, to_sync, dispatch, console))
    return app


async def _lifespan(
    settings: Settings,
    clock: Clock,
    loaded: Loaded,
    to_sync: list[Loaded],
    dispatch: Dispatch | None,
    console: ConsoleParts | None,
    app: web.Application,
) -> AsyncIterator[None]:
    feed = console.feed if console else None
    db = Database(settings.database_url)
    scheduler = scheduler_for(clock)
    metrics = app[METRICS]
    try:
        async with startup_lock(settings.database_url):  # instances started together take turns
            await prepare_database(db, settings.auto_migrate)
            full = to_sync.pop()
            await apply_config(db, full, clock)
            if console is not None:
                console.roster.learn(full.spec.people)
            del full
            await materialise_current(db, clock)
        async with db.begin() as session:
            secret = await link_secret(
                session, settings.link_secret.get_secret_value(), clock.now()
            )
        links = Links(settings.public_url, secret)
        app[FILES] = FileServer(db, links, clock)
        app[DASHBOARD] = Dashboard(db, links, clock, loaded)
        inbox = Inbox(db, clock, _not_ready, metrics=metrics)
        inbox_admin.watch(metrics, db)
        adapters = webhook_adapters(settings)
        app[INBOX], app[ADAPTERS] = inbox, adapters
        async with aiohttp.ClientSession() as http:
            aibot = wecom_aibot_ws(settings, http, inbox, clock)
            transport = WsBotTransport(aibot) if aibot else None
            senders = build_senders(
                settings,
                http,
                clock,
                console=ConsoleSender(console.feed, loaded, console.roster) if console else None,
                aibot_transport=transport,
                publish_image=image_publisher(db, links, clock, settings.image_link_days),
            )
            outbox = DeliveryWorker(
                db, senders, loaded, clock, metrics=metrics, busy=inbox.arriving
            )
            # Replies queued here reach the leader's worker, wherever it runs.
            leadership = Leadership(settings.database_url, outbox.instance, on_nudge=outbox.nudge)
            async with db.begin() as session:
                calendar = CalendarHolder(await load_calendar(session))
            renderer = Renderer.for_config(loaded.root)  # the jobs' and the commands' both
            env = JobEnv(db, loaded, clock, renderer, leadership.nudge)

            async def run_job(name: str, occurrence: datetime) -> None:
                body = BY_NAME[name].run
                if body is not None:
                    await giving_back(body(env, occurrence))

            scheduling = Scheduling(db, scheduler, loaded, clock, calendar, run_job)
            services = {SCHEDULING: scheduling, LINKS: links}
            handle = dispatch or commands(
                settings, db, loaded, clock, leadership.nudge, services, renderer
            )
            inbox.dispatch = showing_inbound(feed, handle) if feed else handle
            if isinstance(handle, Dispatcher):
                inbox.dispatch_takes = True
                many = handle.many
                inbox.dispatch_many = showing_inbound_many(feed, many) if feed else many
            stream = dingtalk_stream(settings, http, inbox, clock)
            duties = Duties(
                scheduler=scheduler,
                scheduling=scheduling,
                worker=outbox,
                catch_up_grace=timedelta(hours=loaded.spec.cycle.catch_up_grace_hours),
                scheduler_enabled=settings.scheduler_enabled,
                aibot=aibot,
                new_aibot=lambda: wecom_aibot_ws(settings, http, inbox, clock),
                transport=transport,
            )
            app[DEPS] = Deps(
                settings,
                clock,
                loaded,
                db,
                http,
                scheduler,
                inbox,
                adapters,
                senders,
                outbox,
                stream,
                aibot,
                scheduling,
                links,
                leadership,
                duties,
            )
            link_tasks = [asyncio.create_task(stream.run())] if stream else []
            await scheduling.apply_all()  # from the database: changes by chat survive restarts
            await leadership.start()  # a lone instance leads before it serves
            if leadership.is_leader:
                await duties.start()
                if duties.catch_up is not None:
                    app[CATCH_UP] = duties.catch_up  # missed occurrences run beside the server
            terms = asyncio.create_task(lead(leadership, duties))
            watch = asyncio.create_task(leadership.run())
            # Messages a previous process accepted and did not get to. SQLite has one process,
            # so all of them are; on PostgreSQL a live instance may still hold its own.
            await inbox.recover(timedelta(0) if db.dialect == "sqlite" else ORPHANED_AFTER)
            sweeping = asyncio.create_task(inbox.sweep())
            checkpoints = asyncio.create_task(db.keep_wal_short())
            trimming = asyncio.create_task(QuietTrim(inbox).run())
            warming = asyncio.create_task(renderer.warm())
            # What start-up built (the configuration, above all: a province's is millions of
            # objects) lives as long as the process. Frozen, the collector stops walking it
            # on every full collection, which otherwise stalls all callbacks at once.
            gc.collect()
            gc.freeze()
            thresholds = gc.get_threshold()
            gc.set_threshold(YOUNG_GENERATION, *thresholds[1:])
            log.info(
                "duban ready on %s:%s (delivery: %s; hooks: %s; %s)",
                settings.host,
                settings.port,
                settings.delivery,
                ", ".join([*adapters, *(["console"] if settings.console else [])]) or "none",
                "leader" if leadership.is_leader else "follower",
            )
            yield
            gc.unfreeze()  # collectable again once this app is gone (tests start many)
            gc.set_threshold(*thresholds)
            try:
                duties.stop_links()  # first, so nothing new arrives while draining
                if stream is not None:
                    stream.stop()
                await asyncio.gather(*link_tasks)
                terms.cancel()
                sweeping.cancel()
                checkpoints.cancel()
                trimming.cancel()
                warming.cancel()
                await asyncio.gather(
                    terms, sweeping, checkpoints, trimming, warming, return_exceptions=True
                )
                await duties.stop_scheduler()
                await scheduling.drain()  # runs started by 日程立即执行
                # What is queued stays stored for the next start; replies of the messages
                # being handled now go out with the worker's drain.
                await inbox.close()
                await duties.stop()
            finally:
                await leadership.stop()  # only now may another instance take over
                await watch
                if scheduler.running:
                    scheduler.shutdown(wait=False)
    finally:
        await db.dispose()
    log.info("duban stopped")


def image_publisher(
    db: Database, links: Links, clock: Clock, days: int
) -> Callable[[bytes], Awaitable[str]] | None:
    """DingTalk shows images only by URL: keep the image and hand out a signed link to it."""
    if not links.enabled:
        return None

    async def publish(data: bytes) -> str:
        now = clock.now()
        ttl = timedelta(days=days)
        async with db.begin() as session:
            file_id = await store_file(
                session,
                data,
                filename="chart.png",
                content_type="image/png",
                kind="image",
                now=now,
                ttl=ttl,
            )
        url = links.url(file_path(file_id), now + ttl)
        assert url is not None
        return url

    return publish


async def _not_ready(msg: Inbound) -> None:  # replaced before any message can arrive
    raise RuntimeError("inbox used before the app was ready")


def dingtalk_stream(
    settings: Settings, http: aiohttp.ClientSession, inbox: Inbox, clock: Clock
) -> StreamClient | None:
    if settings.dingtalk_mode == "http" or not settings.dingtalk_app_key:
        return None
    return StreamClient(
        http,
        api_base=settings.dingtalk_api_base,
        client_id=settings.dingtalk_app_key,
        client_secret=settings.dingtalk_app_secret.get_secret_value(),
        on_messages=inbox.accept,
        clock=clock,
        robot_names=robot_names(settings),
    )


def commands(
    settings: Settings,
    db: Database,
    loaded: Loaded,
    clock: Clock,
    nudge: Callable[[], None],
    services: Mapping[str, object] | None = None,
    renderer: Renderer | None = None,
) -> Dispatcher:
    from handlers import build_router

    return Dispatcher(
        build_router(),
        db,
        loaded,
        renderer or Renderer.for_config(loaded.root),
        clock,
        outbox_poster(loaded, clock),
        bot_names=robot_names(settings),
        on_commit=nudge,
        services=services,
    )


def wecom_aibot_ws(
    settings: Settings, http: aiohttp.ClientSession, inbox: Inbox, clock: Clock
) -> AibotConnection | None:
    secret = settings.wecom_bot_secret.get_secret_value()
    # One connection per bot is allowed: a console dry run must not take it from production.
    if settings.wecom_bot_mode == "http" or settings.delivery == "console":
        return None
    if not (settings.wecom_bot_id and secret):
        return None
    return AibotConnection(
        http,
        url=settings.wecom_bot_ws_url,
        bot_id=settings.wecom_bot_id,
        secret=secret,
        on_messages=inbox.accept,
        clock=clock,
    )


def _reason(e: BaseException) -> str:
    """One line for the log: a probe that fails every few seconds must not fill it with
    tracebacks."""
    if isinstance(e, TimeoutError):
        return f"no answer within {READY_WITHIN:.0f} s"
    text = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {text}"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    checks: dict[str, bool] = {}
    # On a reader's connection: on SQLite the writer's may be held by a job for seconds, and
    # a busy database is not an unreachable one.
    readers = deps.db.readers
    try:
        async with asyncio.timeout(READY_WITHIN):
            async with readers.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
            checks["schema"] = await schema.is_current(readers)
    except Exception as e:  # an unreachable database is exactly what this route reports
        log.warning("readiness: database unreachable: %s", _reason(e))
        checks.setdefault("database", False)
        checks.setdefault("schema", False)
    # A follower serves inbound traffic as well; only the leader runs the scheduler.
    leading = deps.leadership is None or deps.leadership.is_leader
    enabled = deps.settings.scheduler_enabled and leading
    checks["scheduler"] = deps.scheduler.running or not enabled
    ok = all(checks.values())
    body: dict[str, object] = {"ready": ok, "checks": checks, "leader": leading}
    # Informational: HTTP traffic is served either way.
    if deps.stream is not None:
        body["dingtalk_stream"] = "connected" if deps.stream.connected.is_set() else "reconnecting"
    aibot = deps.duties.aibot if deps.duties is not None else deps.aibot
    if aibot is not None and leading:  # the leader alone holds the long connection
        state = "connected" if aibot.connected.is_set() else "reconnecting"
        body["wecom_aibot_ws"] = "replaced" if aibot.replaced else state
    return web.json_response(body, status=200 if ok else 503)
