"""Freed memory goes back to the system (glibc keeps it otherwise): after start-up, and after
each burst of callbacks once it is over."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.db import Database
from bot.inbound import Inbox
from bot.memory import QuietTrim, give_back_freed_memory
from tests.test_inbox import NOW, Recorder, message

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@glibc_only
def test_memory_freed_below_live_data_goes_back_to_the_system() -> None:
    # 40 MB in blocks the allocator serves from its heap, then all freed but the last one,
    # which keeps the heap from shrinking by itself: what a start-up's sync leaves behind.
    blocks = [bytearray(64 * 1024) for _ in range(640)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touched: resident, not just reserved
    last = blocks.pop()
    blocks.clear()
    before = resident_mb()
    give_back_freed_memory()
    after = resident_mb()
    assert before - after > 20, (before, after)
    assert last[0] == ord("x")  # what is still in use stays


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def test_memory_goes_back_once_a_burst_is_over_and_never_during_one(db: Database) -> None:
    record = Recorder()
    inbox = Inbox(db, FixedClock(NOW), record)
    give_back = Counting()
    trim = QuietTrim(inbox, give_back)
    assert not trim.check()  # nothing handled since start-up, which trimmed itself

    await inbox.accept([message(f"m{i}") for i in range(50)])
    await inbox.drain()
    assert not trim.check()  # callbacks came in since the last look: the burst may go on
    assert trim.check()  # a whole interval quiet, nothing left to do
    assert give_back.calls == 1
    assert not trim.check()  # nothing new: once a burst, not once a look

    record.release.clear()  # the next message is still being handled at the next looks
    await inbox.accept([message("late")])
    assert not trim.check()
    assert not trim.check()
    record.release.set()
    await inbox.drain()
    assert trim.check()
    assert give_back.calls == 2
    assert record.handled[-1] == "late"
