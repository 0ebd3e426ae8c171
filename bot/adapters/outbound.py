"""What every sender shares: one JSON request with its failures sorted into retryable and
permanent, and sending a message's parts in order.

Resuming a message: the requests a message becomes (its text parts, then a trailing mention
text or image when there is one) are numbered from 0 and built the same way every time.
When request k fails, ``send`` raises ``PartDeliveryError`` with ``sent_parts == k``: requests
0..k-1 went out. Calling ``send(destination, message, skip_parts=k)`` later sends only the
rest, so nothing is shown twice. (A timeout is the exception: the platform may have shown the
part it did not answer for; it is counted as not sent.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.adapters.base import DeliveryError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds for one request, connecting included
Step = Callable[[], Awaitable[None]]


def tail(secret: str) -> str:
    """What logs may show of a secret: its last four characters."""
    return "…" + secret[-4:] if len(secret) > 8 else "…"


@dataclass(frozen=True, slots=True)
class JsonReply:
    status: int
    body: Any  # the decoded JSON answer


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    seconds: float,
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> JsonReply:
    """One request; transport failures and 5xx/429 become retryable ``DeliveryError``s.

    ``what`` names the call in errors; the URL never appears (it may hold a key). The body is
    sent as compact UTF-8 JSON: escaped Chinese would triple the bytes counted by limits.
    """
    data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
    all_headers = {"Content-Type": "application/json"} if data is not None else {}
    all_headers.update(headers or {})
    try:
        async with http.request(
            method,
            url,
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as resp:
            status, raw = resp.status, await resp.read()
    except TimeoutError:
        raise DeliveryError(
            f"{what}: no answer within {seconds:g} s", retryable=True, code="timeout"
        ) from None
    except aiohttp.ClientError as exc:
        raise DeliveryError(
            f"{what}: connection failed ({type(exc).__name__})", retryable=True, code="connection"
        ) from None
    if status >= 500 or status == 429:
        raise DeliveryError(f"{what}: HTTP {status}", retryable=True, code=f"http{status}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise DeliveryError(
            f"{what}: HTTP {status}, answer is not JSON", retryable=False, code=f"http{status}"
        ) from None
    return JsonReply(status, body)


def check_errcode(body: Any, what: str, retryable: frozenset[int]) -> None:
    """Raise the ``DeliveryError`` an ``{errcode, errmsg}`` answer (WeCom, DingTalk robots)
    stands for; codes in ``retryable`` are worth another try, any other is permanent."""
    if not isinstance(body, dict) or not isinstance(body.get("errcode", 0), int):
        raise DeliveryError(f"{what}: unexpected answer", retryable=False, code="bad_reply")
    code = body.get("errcode", 0)
    if code != 0:
        errmsg = str(body.get("errmsg", ""))[:120]
        raise DeliveryError(
            f"{what}: errcode {code} {errmsg}", retryable=code in retryable, code=str(code)
        )


class PartDeliveryError(DeliveryError):
    """A ``DeliveryError`` that says how far the message got: ``sent_parts`` of
    ``total_parts`` requests were delivered (see the module docstring)."""

    def __init__(self, cause: DeliveryError, *, sent_parts: int, total_parts: int) -> None:
        super().__init__(
            str(cause), retryable=cause.retryable, code=cause.code, sent_parts=sent_parts
        )
        self.total_parts = total_parts


async def deliver(build: Callable[[], Sequence[Step]], *, skip_parts: int, label: str) -> None:
    """Run the steps ``build`` returns, from ``skip_parts`` on, strictly in order.

    ``label`` names the destination in logs and must hold no secret.
    """
    try:
        steps = build()
    except DeliveryError as exc:  # refused before anything was sent
        raise PartDeliveryError(exc, sent_parts=skip_parts, total_parts=0) from None
    total = len(steps)
    for index in range(skip_parts, total):
        try:
            await steps[index]()
        except DeliveryError as exc:
            kind = "retryable" if exc.retryable else "permanent"
            log.warning("%s: part %d/%d failed, %s: %s", label, index + 1, total, kind, exc)
            raise PartDeliveryError(exc, sent_parts=index, total_parts=total) from None
        log.debug("%s: part %d/%d sent", label, index + 1, total)
