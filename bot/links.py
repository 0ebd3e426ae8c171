"""Signed, expiring links to what the bot serves over HTTP: files and the dashboard.

A link is ``{public_url}{path}?exp=<epoch seconds>&sig=<HMAC-SHA256(path, exp)>``. The path is
signed, the query besides ``exp``/``sig`` is not: a dashboard link may switch periods, never
scope. Links work on every instance because the key comes from the environment or the
database, never from one process's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import claim
from bot.models import AppKey

__all__ = ["LINKS", "Links", "link_secret"]

LINKS = "links"  # the Links object among the dispatcher's services
_KEY_NAME = "link_secret"


@dataclass(frozen=True)
class Links:
    public_url: str
    secret: bytes = field(repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.public_url)

    def signature(self, path: str, exp: int) -> str:
        return hmac.new(self.secret, f"{path}\n{exp}".encode(), hashlib.sha256).hexdigest()

    def url(self, path: str, expires_at: datetime, **query: str) -> str | None:
        """The public link to ``path`` until ``expires_at``; None without a public URL."""
        if not self.public_url:
            return None
        exp = int(expires_at.timestamp())
        params = {**query, "exp": str(exp), "sig": self.signature(path, exp)}
        return f"{self.public_url.rstrip('/')}{path}?{urlencode(params)}"

    def verify(self, path: str, query: Mapping[str, str], now: datetime) -> bool:
        exp_text, sig = query.get("exp", ""), query.get("sig", "")
        if not (exp_text.isdigit() and sig):
            return False
        exp = int(exp_text)
        if not hmac.compare_digest(self.signature(path, exp), sig):
            return False
        return exp >= now.timestamp()


async def link_secret(session: AsyncSession, configured: str, now: datetime) -> bytes:
    """The configured key, else the one kept in ``app_keys`` (made by whichever instance is
    first: the insert is a claim, so two starting at once agree)."""
    if configured:
        return configured.encode()
    await claim(
        session, AppKey, {"name": _KEY_NAME, "value": secrets.token_hex(32), "created_at": now}
    )
    value = await session.scalar(select(AppKey.value).where(AppKey.name == _KEY_NAME))
    assert value is not None
    return value.encode()
