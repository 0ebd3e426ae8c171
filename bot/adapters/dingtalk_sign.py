"""DingTalk HMAC signing: inbound robot callbacks and the custom-robot webhook URL.

Both use base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}")); the webhook sends
it URL-encoded in the query, the callback sends it raw in the ``sign`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal
from urllib.parse import urlencode

__all__ = ["DingTalkSignError", "sign", "signed_webhook_url", "verify_callback"]

SignFailure = Literal["missing", "bad_timestamp", "expired", "mismatch"]

# ASCII digits only (str.isdigit accepts other scripts), and bounded so int() stays cheap.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,19}")


class DingTalkSignError(ValueError):
    def __init__(self, reason: SignFailure) -> None:
        super().__init__(f"DingTalk signature rejected: {reason}")
        self.reason: SignFailure = reason


def _compute(timestamp: str, secret: str) -> str:
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(timestamp_ms: str | int, secret: str) -> str:
    """The base64 signature, not URL-encoded."""
    return _compute(str(timestamp_ms), secret)


def verify_callback(
    timestamp: str | None,
    sign: str | None,
    app_secret: str,
    now_ms: int,
    window_ms: int = 3_600_000,
) -> None:
    """Check the ``timestamp``/``sign`` headers of an enterprise-internal robot callback.

    A timestamp exactly ``window_ms`` away from ``now_ms`` is still accepted.
    """
    if not timestamp or not sign:
        raise DingTalkSignError("missing")
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise DingTalkSignError("bad_timestamp")
    if abs(now_ms - int(timestamp)) > window_ms:
        raise DingTalkSignError("expired")
    # Sign the header string as received: DingTalk signed those exact characters.
    expected = _compute(timestamp, app_secret).encode("ascii")
    if not hmac.compare_digest(expected, sign.encode("utf-8")):
        raise DingTalkSignError("mismatch")


def signed_webhook_url(
    base_url: str, access_token: str, secret: str | None, timestamp_ms: int
) -> str:
    """``{base_url}/robot/send?access_token=..[&timestamp=..&sign=..]``.

    ``base_url`` is the host (and any path prefix, for government editions); a value that
    already ends in ``/robot/send`` is used as is, so a pasted webhook address also works.
    An empty ``secret`` is treated like ``None``: the robot then relies on keywords or IPs.
    """
    url = base_url.rstrip("/")
    if not url.endswith("/robot/send"):
        url += "/robot/send"
    params = {"access_token": access_token}
    if secret:
        params["timestamp"] = str(timestamp_ms)
        params["sign"] = sign(timestamp_ms, secret)
    return f"{url}?{urlencode(params)}"
