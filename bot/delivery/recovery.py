"""Who left what in flight: the rows a stopped process had claimed and not yet recorded.

A claim is signed ``host:pid``. On start, the worker takes back the rows claimed by its own
instance id (a restart with the same id) or by a process on this host that no longer exists,
and any claim older than the lease, whoever made it. Claims of live processes elsewhere are
left to their lease (``claims.release_expired``).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from bot.models import OutboxMessage


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def left_behind(row: OutboxMessage, *, now: datetime, lease: timedelta, instance: str) -> bool:
    """Whether ``row``, found ``sending`` when ``instance`` starts, was abandoned."""
    if row.claimed_at is None or row.claimed_at <= now - lease:
        return True
    if row.claimed_by is None:
        return False
    if row.claimed_by == instance:
        return True
    host, _, pid = row.claimed_by.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
