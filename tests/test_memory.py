"""Freed memory goes back to the system (glibc keeps it otherwise): after start-up, and after
each burst of callbacks once it is over."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.db import Database
from bot.inbound import Inbox
from bot.memory import QuietTrim, give_back_freed_memory, giving_back
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


# What each probe starts with: a process of its own, glibc as the server sets it or left alone.
PRELUDE = """
import sys
from pathlib import Path
from bot.memory import give_back_freed_memory, map_large_blocks
if sys.argv[1] == "fixed":
    map_large_blocks()
def resident_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(l for l in status if l.startswith("VmRSS:")).split()[1]) / 1024
"""


def probe(body: str, mode: str) -> list[float]:
    run = [sys.executable, "-c", PRELUDE + body, mode]
    return [
        float(x)
        for x in subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    ]


# Large blocks freed after smaller ones were allocated behind them: what a busy server's
# batches leave. The first block freed is what raises glibc's threshold when it moves.
LARGE = """
first = bytearray(8 * 1024 * 1024)
del first
large, small = [], []
for _ in range(20):
    block = bytearray(2 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    large.append(block)
    small.append(bytearray(1000))
before = resident_mb()
large.clear()
print(before - resident_mb())
"""


@glibc_only
def test_blocks_of_a_megabyte_or_more_go_back_to_the_system_when_freed() -> None:
    assert probe(LARGE, "fixed")[0] > 35  # of the 40 MB freed
    assert probe(LARGE, "default")[0] < 5  # what glibc does unless told: kept resident


# Freed at the top of the heap: glibc gives back anything over 128 KiB at once by default,
# which a server reading sockets paid for in two system calls a read. Set, the top keeps up to
# 2 MiB (what a read needs) and gives back more than that as before, e.g. after a big job.
TOP = """
resident_mb()  # its own garbage freed first, not above the blocks
blocks = [b""] * 640  # made first: grown while filling, the list would pin the top
for i in range(640):
    blocks[i] = bytearray(64 * 1024)
    blocks[i][::4096] = b"x" * 16
del blocks[24:]  # 38.5 MB of the top
before = resident_mb()
blocks.clear()  # the last 1.5 MB
freed = resident_mb()
give_back_freed_memory()
print(before - freed, before - resident_mb())
"""
BIG = TOP.replace("del blocks[24:]  # 38.5 MB of the top", "")


@glibc_only
def test_the_heaps_top_keeps_what_a_read_needs_and_no_more() -> None:
    on_free, on_trim = probe(TOP, "fixed")
    assert on_free < 0.5 and on_trim > 1.2, (on_free, on_trim)  # kept until the trim
    assert probe(TOP, "default")[0] > 1.2  # glibc unless told: every free at the top shrinks it
    assert probe(BIG, "fixed")[0] > 35  # beyond 2 MiB the top shrinks at once, as before


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


async def test_memory_goes_back_after_each_job_however_it_ends() -> None:
    give_back = Counting()

    async def job(fail: bool) -> str:
        assert give_back.calls == (1 if fail else 0)  # not before the job is over
        if fail:
            raise RuntimeError("the job failed")
        return "done"

    assert await giving_back(job(False), give_back) == "done"
    assert give_back.calls == 1
    with pytest.raises(RuntimeError):
        await giving_back(job(True), give_back)
    assert give_back.calls == 2
