"""The dashboard's routes: a read-only page per scope, reached only by a signed, expiring link.

The signature covers the path (the scope) and the expiry; ``?period=`` is free, so a reader
may move between months but never from one community's page to another's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from bot.clock import SHANGHAI, Clock
from bot.db import Database
from bot.deployment import Loaded
from bot.duerules import Period
from bot.ledger.board import community_by_key
from bot.links import Links

from .pages import Pages
from .views import Signed, build_page, committee_path, community_path

log = logging.getLogger(__name__)
HEADERS = {
    # No script at all; inline styles only (bar widths); images only from here or inline SVG.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the signed link must not leave in a Referer header
    "Cache-Control": "private, no-store",
    "X-Robots-Tag": "noindex, nofollow",
}
YEARS = range(2000, 2101)  # periods outside are typing mistakes, refused as such


@dataclass
class Dashboard:
    db: Database
    links: Links
    clock: Clock
    deployment: Loaded
    pages: Pages = field(init=False)

    def __post_init__(self) -> None:
        self.pages = Pages.for_config(self.deployment.root)

    @property
    def committee(self) -> str:
        spec = self.deployment.spec.committee
        return spec.short or spec.name


DASHBOARD = web.AppKey("dashboard", Dashboard)


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get(committee_path(), committee_page)
    app.router.add_get(community_path("{key}"), community_page)


async def committee_page(request: web.Request) -> web.Response:
    return await _page(request, None)


async def community_page(request: web.Request) -> web.Response:
    return await _page(request, request.match_info["key"])


async def _page(request: web.Request, key: str | None) -> web.Response:
    board = request.app.get(DASHBOARD)
    if board is None:
        raise web.HTTPServiceUnavailable()
    now = board.clock.now()
    path = committee_path() if key is None else community_path(key)
    if not board.links.verify(path, request.query, now):
        log.warning("dashboard: refused %s: bad or expired signature", path)
        return _error(
            board, 403, "链接无效或已过期", "请在群里或私聊中向机器人发送“看板”，获取新的链接。"
        )
    period = _period(request.query.get("period"), now)
    if period is None:
        log.warning("dashboard: bad period for %s", path)
        return _error(
            board, 400, "月份写法不对", "请写成 2026-11（月）、2026-Q4（季度）或 2026（年度）。"
        )
    exp = int(request.query["exp"])
    async with board.db.begin() as session:
        community = await community_by_key(session, key) if key is not None else None
        if key is not None and community is None:
            log.warning("dashboard: no active community %s", key)
            return _error(board, 404, "没有这个共同体", "该共同体不存在或已撤销。")
        page = await build_page(
            session,
            committee=board.committee,
            community=community,
            period=period,
            now=now,
            path=path,
            signed=Signed(board.links, exp),
            expires_at=datetime.fromtimestamp(exp, SHANGHAI),
        )
    html = board.pages.render("dashboard.html.j2", page=page)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)


def _period(text: str | None, now: datetime) -> Period | None:
    if text is None:
        return Period.containing("monthly", now.date())
    try:
        period = Period.parse(text)
    except ValueError:
        return None
    return period if period.year in YEARS else None


def _error(board: Dashboard, status: int, title: str, detail: str) -> web.Response:
    html = board.pages.render("error.html.j2", title=title, detail=detail)
    return web.Response(
        status=status, text=html, content_type="text/html", charset="utf-8", headers=HEADERS
    )
