"""The console's web face: the page, the directory it picks from, and the live event stream.

It is a local tool that lets anyone act as anyone, so every console request (these routes and
POST /hooks/console) must come from this machine: the socket peer must be a loopback address —
headers such as X-Forwarded-For are never believed — and the Host and any Origin header must be
local names too, so that a web page elsewhere cannot reach it through the browser (DNS
rebinding, cross-site form posts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from dataclasses import dataclass
from functools import partial, wraps
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from bot.console.adapter import ConsoleWebhook
from bot.console.directory import Directory, as_json
from bot.console.feed import ConsoleEvent, ConsoleFeed
from bot.console.roster import Roster
from bot.deployment import Loaded
from bot.web import serve_hook

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
ASSETS = {  # URL path → (file, content type); a fixed list, nothing else is served
    "/console": ("console.html", "text/html"),
    "/console/console.js": ("console.js", "text/javascript"),
    "/console/markdown.js": ("markdown.js", "text/javascript"),
    "/console/console.css": ("console.css", "text/css"),
}
PAGE_HEADERS = {
    # Belt and braces for "no external resources": the browser refuses anything not from here.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class Console:
    feed: ConsoleFeed
    directory: Directory
    assets: dict[str, bytes]
    heartbeat: float


CONSOLE = web.AppKey("console", Console)


def add_console_routes(
    app: web.Application,
    feed: ConsoleFeed,
    deployment: Loaded,
    roster: Roster,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> None:
    """Mount the console; call before the app starts (aiohttp freezes routes and signals)."""
    assets = {path: (STATIC / name).read_bytes() for path, (name, _) in ASSETS.items()}
    app[CONSOLE] = Console(feed, Directory(deployment, roster), assets, heartbeat)
    # Its own route, not the generic /hooks/{path}: the adapter is never reachable unguarded.
    console_hook = partial(serve_hook, adapter=ConsoleWebhook(deployment, roster))
    app.add_routes([web.route("*", "/hooks/console", local_only(console_hook))])
    app.add_routes([web.get(path, local_only(asset)) for path in ASSETS])
    app.add_routes(
        [
            web.get("/console/api/directory", local_only(directory_json)),
            web.get("/console/api/events", local_only(events)),
        ]
    )
    # Shutdown signals run before the server waits for open requests to finish: ending the
    # streams here lets a stop take milliseconds instead of the whole shutdown timeout.
    app.on_shutdown.append(_close_streams)


def local_only(handler: Handler) -> Handler:
    """The console's routes, each guarded: a handler, not a middleware, because aiohttp runs
    a middleware on every request: 12–15 µs of CPU a callback, for a check it never needs."""

    @wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        problem = _not_local(request)
        if problem is not None:
            log.warning("console request to %s refused with 403: %s", request.path, problem)
            return web.Response(
                status=403, text="控制台只能在本机用 http://127.0.0.1 或 http://localhost 打开。"
            )
        return await handler(request)

    return guarded


async def asset(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    _, content_type = ASSETS[request.path]
    return web.Response(
        body=console.assets[request.path],
        content_type=content_type,
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


async def directory_json(request: web.Request) -> web.Response:
    body = request.app[CONSOLE].directory.gzipped()
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
    else:
        body = as_json(body)
    return web.Response(
        body=body, content_type="application/json", charset="utf-8", headers=headers
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the recent log (or what followed Last-Event-ID), then live."""
    console = request.app[CONSOLE]
    feed = console.feed
    response = web.StreamResponse(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    with feed.subscribe(request.headers.get("Last-Event-ID")) as sub:
        pending: asyncio.Future[ConsoleEvent | None] | None = None
        try:
            await response.prepare(request)
            await response.write(b"retry: 3000\n\n")
            for past in sub.backlog:
                await response.write(_sse(feed, past))
            while True:
                # One read stays pending across heartbeats: cancelling a queue read on every
                # timeout could drop an event that arrived at that very moment.
                pending = pending or asyncio.ensure_future(sub.get())
                done, _ = await asyncio.wait({pending}, timeout=console.heartbeat)
                if not done:
                    await response.write(b": heartbeat\n\n")
                    continue
                event, pending = pending.result(), None
                if event is None:
                    break
                await response.write(_sse(feed, event))
        except ConnectionResetError:
            log.info("console event stream closed by the browser")
        finally:
            if pending is not None:
                pending.cancel()
    return response


def _sse(feed: ConsoleFeed, event: ConsoleEvent) -> bytes:
    data = json.dumps(event.as_json(), ensure_ascii=False)  # one line: newlines are escaped
    return f"id: {feed.event_id(event)}\ndata: {data}\n\n".encode()


async def _close_streams(app: web.Application) -> None:
    app[CONSOLE].feed.close()


def _not_local(request: web.Request) -> str | None:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    address = peer[0] if isinstance(peer, tuple | list) and peer else None
    if not isinstance(address, str) or not _loopback(address):
        return f"peer {address!r} is not a loopback address"
    if not _local_name(_host_of(f"http://{request.host}")):
        return f"Host {request.host[:64]!r} is not a local name"
    origin = request.headers.get("Origin")
    if origin is not None and not _local_name(_host_of(origin)):
        return f"Origin {origin[:64]!r} is not local"
    return None


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _host_of(url: str) -> str:
    try:
        return URL(url).host or ""
    except ValueError:
        return ""


def _local_name(host: str) -> bool:
    return host.lower() == "localhost" or _loopback(host)
