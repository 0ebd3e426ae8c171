"""Generated files (chart images, ledger workbooks) kept in the database and served at signed,
expiring links, so any instance behind a load balancer can answer for them."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.db import Database
from bot.links import Links
from bot.models import StoredFile

__all__ = ["FILES", "FileServer", "add_file_routes", "file_path", "store_file"]

log = logging.getLogger(__name__)


def file_path(file_id: str) -> str:
    return f"/files/{file_id}"


async def store_file(
    session: AsyncSession,
    data: bytes,
    *,
    filename: str,
    content_type: str,
    kind: str,
    now: datetime,
    ttl: timedelta,
) -> str:
    """Keep ``data`` until ``now + ttl``; returns the file's unguessable id."""
    # Expired files go when new ones come: no separate housekeeping job to forget.
    await session.execute(delete(StoredFile).where(StoredFile.expires_at < now))
    file_id = secrets.token_urlsafe(24)
    session.add(
        StoredFile(
            id=file_id,
            kind=kind,
            filename=filename,
            content_type=content_type,
            data=data,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await session.flush()
    return file_id


@dataclass
class FileServer:
    db: Database
    links: Links
    clock: Clock


FILES = web.AppKey("files", FileServer)


def add_file_routes(app: web.Application) -> None:
    app.router.add_get("/files/{file_id}", serve_file)


async def serve_file(request: web.Request) -> web.Response:
    server = request.app.get(FILES)
    if server is None:
        raise web.HTTPServiceUnavailable()
    file_id, now = request.match_info["file_id"], server.clock.now()
    if not server.links.verify(file_path(file_id), request.query, now):
        log.warning("files: refused %s: bad or expired signature", request.path)
        return web.Response(status=403, text="链接无效或已过期，请在群里重新获取。")
    async with server.db.begin() as s:
        row = await s.scalar(select(StoredFile).where(StoredFile.id == file_id))
    if row is None or row.expires_at < now:
        log.info("files: %s gone", file_id)
        return web.Response(status=410, text="文件已过期，请在群里重新获取。")
    inline = row.content_type.startswith("image/")
    max_age = max(0, int((row.expires_at - now).total_seconds()))
    disposition = "inline" if inline else "attachment"
    ascii_name = row.filename.encode("ascii", "replace").decode().replace("?", "_")
    return web.Response(
        body=row.data,
        content_type=row.content_type,
        headers={
            "Content-Disposition": (
                f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row.filename)}"
            ),
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        },
    )
