"""Uploading a file for a WeCom group robot (PLATFORMS.md §3): ``upload_media`` gives a
``media_id`` that a ``file`` message then posts, valid three days and only for the same key.

Files must be over 5 bytes and at most 20 MB; anything else is refused before any request, as
the platform would refuse it anyway (40006).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.adapters.base import DeliveryError
from bot.adapters.outbound import check_errcode
from bot.messages import OutboundFile

FILE_MIN, FILE_MAX = 5, 20 << 20  # bytes: over 5, up to 20 MB
UPLOAD_TIMEOUT = 120.0  # seconds; 20 MB over a slow government uplink


def check_file(file: OutboundFile) -> None:
    size = len(file.data)
    if not FILE_MIN < size <= FILE_MAX:
        raise DeliveryError(
            f"wecom webhook: file of {size} bytes (must be over 5 bytes and at most 20 MB)",
            retryable=False,
            code="40006",
        )


async def upload_file(
    http: aiohttp.ClientSession,
    api_base: str,
    key: str,
    file: OutboundFile,
    *,
    retryable: frozenset[int],
) -> str:
    """The robot's ``media_id`` for ``file``; failures are ``DeliveryError``s like any send."""
    what = "wecom webhook upload_media"
    url = f"{api_base}/cgi-bin/webhook/upload_media?{urlencode({'key': key, 'type': 'file'})}"
    # quote_fields=False: the name goes as UTF-8, as browsers send it; percent-encoded, a
    # Chinese name could reach the group as %E5%8F%B0….
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("media", file.data, filename=file.name, content_type="application/octet-stream")
    try:
        async with http.post(
            url, data=form, timeout=aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT)
        ) as resp:
            status, body = resp.status, await _json(resp)
    except TimeoutError:
        raise DeliveryError(f"{what}: no answer", retryable=True, code="timeout") from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(
            f"{what}: connection failed ({type(exc).__name__})", retryable=True, code="connection"
        ) from None
    if status >= 500 or status == 429:
        raise DeliveryError(f"{what}: HTTP {status}", retryable=True, code=f"http{status}")
    check_errcode(body, what, retryable)
    media_id = body.get("media_id") if isinstance(body, dict) else None
    if not isinstance(media_id, str) or not media_id:
        raise DeliveryError(f"{what}: no media_id", retryable=True, code="bad_reply")
    return media_id


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None
