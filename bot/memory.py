"""Giving back to the system the memory the C allocator keeps after a burst of work.

glibc keeps what Python frees in its arenas for reuse and returns it only from the top of the
heap, which one live block can pin. A province's start-up leaves ~40 MB there, and a burst of
callbacks on PostgreSQL grows the heap a little more with each one it handles (measured: 50 →
72 MB over three bursts, of which `malloc_trim` gave back 18 MB). A server that answers bursts
must not creep up with each; so after start-up, and after each burst once it is over, the free
pages go back, and blocks of a megabyte or more are never taken from the heap at all.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often the quiet watch looks. A trim of a serving process's heap took 0.5–1.8 ms, paid
# once a burst, never while callbacks arrive.
QUIET_CHECK_SECONDS = 2.0
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
LARGE_BLOCK = 1024 * 1024
# What the heap's top may keep before a free gives it back: twice the threshold, glibc's own
# rule when it moves the threshold itself.
KEPT_ON_TOP = 2 * LARGE_BLOCK


def _libc() -> Any:
    return ctypes.CDLL(None)  # the C library the interpreter runs on


def map_large_blocks() -> None:
    """Serve every block of LARGE_BLOCK or more with a mapping of its own, unmapped when freed,
    and let the heap's top keep up to KEPT_ON_TOP.

    glibc maps blocks from 128 KiB at first, but the first time such a block is freed it
    raises the threshold to that block's size (up to 32 MiB), and from then on large blocks
    (the configuration's text, a busy server's batches) come from the heap, where a freed one
    stays resident behind the smaller ones allocated after it. Fixed above asyncio's 256 KiB
    receive buffer, which every socket read allocates and shrinks: mapped, each read cost
    three system calls. In the heap with glibc's 128 KiB trim threshold, each cost two (the
    top shrunk by `brk` on the free, grown again on the next read), and none once the top may
    keep 1 MiB or more (measured with strace, 20,000 reads). More than KEPT_ON_TOP still goes
    back at once (after a scheduled job, say), and the rest with `give_back_freed_memory`.
    """
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # not glibc: nothing to set
        return
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    mallopt(_M_TRIM_THRESHOLD, KEPT_ON_TOP)


def give_back_freed_memory() -> None:
    """Return to the system the memory freed but kept by the C allocator (glibc's only:
    elsewhere there is nothing to do)."""
    try:
        trim = _libc().malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def collect_and_give_back() -> None:
    """Collect the cyclic garbage, then give back what is free: after a scheduled job."""
    gc.collect()
    give_back_freed_memory()


async def giving_back(
    work: Awaitable[T], give_back: Callable[[], None] = collect_and_give_back
) -> T:
    """``await work``, then collect and give back what it freed, whether it succeeded or not.

    A scheduled job reads and renders tens of thousands of rows and leaves their ORM objects'
    cycles behind. Left to the collector, they are found by the next full collection, in the
    middle of whichever request happens to trigger it (a 本月任务 took 129–145 ms instead of
    5 after a province's 提示, measured in bench/scans.py). Here the job pays for its own
    garbage, once, as it ends; and no burst of callbacks need follow it for the memory to go
    back."""
    try:
        return await work
    finally:
        give_back()


class Work(Protocol):
    """What the watch asks of the inbox."""

    @property
    def accepted(self) -> int: ...

    @property
    def idle(self) -> bool: ...


class QuietTrim:
    """Gives the freed memory back once after each burst of inbound work: when nothing came in
    over a whole check interval and nothing is left to do."""

    def __init__(self, work: Work, give_back: Callable[[], None] = give_back_freed_memory) -> None:
        self.work = work
        self.give_back = give_back
        self._looked_at = self._trimmed_at = work.accepted  # start-up trimmed already

    def check(self) -> bool:
        """One look; whether it gave memory back."""
        accepted = self.work.accepted
        arrived, self._looked_at = accepted != self._looked_at, accepted
        if arrived or accepted == self._trimmed_at or not self.work.idle:
            return False
        self.give_back()
        self._trimmed_at = accepted
        return True

    async def run(self, every: float = QUIET_CHECK_SECONDS) -> None:
        """Look every `every` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                self.check()
            except Exception:  # never worth stopping the watch for
                log.exception("giving freed memory back failed")
