"""Start-up gives back to the system what its working set freed (glibc keeps it otherwise)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from bot.startup import give_back_freed_memory

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


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
