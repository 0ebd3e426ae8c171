"""The platforms' webhook routes: one generic route in front of every WebhookAdapter."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.adapters.base import HttpReply, HttpRequest, Rejected, WebhookAdapter
from bot.inbound import Inbox
from bot.metrics import METRICS

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
ADAPTERS = web.AppKey("adapters", dict[str, WebhookAdapter])
INBOX = web.AppKey("inbox", Inbox)


def add_routes(app: web.Application) -> None:
    app.add_routes([web.route("*", "/hooks/{path}", hook)])


async def hook(request: web.Request) -> web.Response:
    adapter = request.app[ADAPTERS].get(request.match_info["path"])
    if adapter is None:
        raise web.HTTPNotFound()
    return await serve_hook(request, adapter)


async def serve_hook(request: web.Request, adapter: WebhookAdapter) -> web.Response:
    """One callback through `adapter`: read, verify and parse it, record the messages, answer.
    A route of its own calls this for an adapter kept off the generic route (the console)."""
    if request.method not in ("GET", "POST"):
        raise web.HTTPNotFound()
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(request, adapter, 413, "body over 1 MiB")
    try:
        body = await request.content.read(MAX_BODY + 1)
    except OSError:
        return _refuse(request, adapter, 400, "body could not be read")
    if len(body) > MAX_BODY:
        return _refuse(request, adapter, 413, "body over 1 MiB")
    inbox = request.app[INBOX]
    req = HttpRequest(request.method, request.query, request.headers, body)
    try:
        parsed = adapter.handle(req, inbox.clock.now())
    except Rejected as e:
        return _refuse(request, adapter, e.status, e.reason)
    await inbox.accept(parsed.messages)
    return _reply(parsed.reply)


def _refuse(
    request: web.Request, adapter: WebhookAdapter, status: int, reason: str
) -> web.Response:
    if METRICS in request.app:
        request.app[METRICS].count_inbound(adapter.platform, "refused")
    log.warning("%s callback refused with %s: %s", adapter.path, status, reason)
    return web.Response(status=status)


def _reply(reply: HttpReply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)
