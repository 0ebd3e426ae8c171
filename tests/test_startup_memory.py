"""Start-up gives back to the system what its working set freed (glibc keeps it otherwise)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bot.allocator import give_back_freed_memory

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


# Large blocks freed after smaller ones were allocated behind them: what a busy server's
# batches leave. The first block freed is what raises glibc's threshold when it moves.
PROBE = """
import sys
from pathlib import Path
from bot.allocator import hand_back_large_blocks
if sys.argv[1] == "fixed":
    hand_back_large_blocks()
def resident_mb():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(l for l in status if l.startswith("VmRSS:")).split()[1]) / 1024
first = bytearray(1024 * 1024)
del first
large, small = [], []
for _ in range(160):
    block = bytearray(256 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    large.append(block)
    small.append(bytearray(1000))
before = resident_mb()
large.clear()
print(before - resident_mb())
"""


def test_large_blocks_go_back_to_the_system_when_freed() -> None:
    def given_back(mode: str) -> float:
        run = [sys.executable, "-c", PROBE, mode]
        return float(subprocess.run(run, capture_output=True, text=True, check=True).stdout)

    assert given_back("fixed") > 35  # of the 40 MB freed
    assert given_back("default") < 5  # what glibc does unless told: kept resident
