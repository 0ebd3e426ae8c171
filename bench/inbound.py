"""Benchmark 1 of issue 8: check-ins in through signed DingTalk and encrypted WeCom callbacks.

    .venv/bin/python bench/inbound.py [--database URL] [--duration 10] [--concurrency 50]
                                      [--units 20000] [--config DIR] [--rounds 1]

Starts, as real processes, a bare aiohttp server (the ceiling: bench/bare_server.py) and
`duban serve` on a generated province (bench/province.py), with the scheduler ON, both
platforms' callbacks mounted and every reply kept on the console (DUBAN_DELIVERY=console, so
the outbox and the delivery worker run but nothing leaves the machine). wrk drives each target
for --duration seconds at --concurrency connections: first the ceiling, then duban, per
platform, so each ratio compares two measurements taken a minute apart. --rounds N repeats
that N times on the same server, with fresh message ids, and prints the spread; every round
must meet the targets.

After each duban run the benchmark waits until every accepted message has been handled and
then counts in the database what was accepted (inbound_seen), recorded (check-ins) and refused,
so a server that answers fast and drops work cannot look good; "handled/s" is check-ins
recorded per second including that drain. Peak RSS is the server's VmHWM: through start-up
(loading a province's configuration) and, reset after start-up, through the inbound load.

--database takes a PostgreSQL URL (postgresql+asyncpg://user@host:port/db): a fresh database
is created beside it for the run and dropped afterwards. The default is a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)] if str(ROOT) not in sys.path else []

from bench import inbound_data as data  # noqa: E402
from bench._common import checkpoint_ended, last_checkpoint  # noqa: E402
from bench.inbound_proc import Server, cpu_seconds, database_for, drop_database  # noqa: E402
from bench.province import write_config  # noqa: E402

WRK = "/usr/bin/wrk"
TARGET_RATIO, TARGET_P99_MS, TARGET_RSS_MB = 0.25, 50.0, 250.0


@dataclass
class Run:
    name: str
    requests: int = 0
    made: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    non_2xx: int = 0
    # duban only: what the database shows after the drain
    distinct: int = 0
    accepted: int = 0
    recorded: int = 0
    refused: int = 0
    failed: int = 0
    drain_s: float = 0.0
    cpu_s: float = 0.0  # the server's CPU time over the run (and the drain)
    checkpoint: str = ""  # on PostgreSQL, whether a checkpoint ended during the run

    @property
    def cpu_ms_per_message(self) -> float:
        done = self.recorded if self.name.startswith("duban") else self.requests
        return 1000 * self.cpu_s / done if done else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def handled_rps(self) -> float:
        return self.recorded / (self.seconds + self.drain_s) if self.seconds else 0.0


async def wrk(
    url: str, script: str, data_file: Path, args: argparse.Namespace, name: str, pid: int
) -> Run:
    cmd = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.concurrency}",
        f"-d{args.duration}s",
        "--timeout",
        "5s",  # WeCom gives up on a callback after 5 s and sends it again
        "--latency",
        "-s",
        str(ROOT / "bench" / "wrk" / script),
        url,
        "--",
        str(data_file),
        str(args.threads),
    ]
    cpu = cpu_seconds(pid)
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out = (await proc.communicate())[0].decode("utf-8", "replace")
    cpu = cpu_seconds(pid) - cpu
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed:\n{out}")
    got = json.loads(line[6:])
    non_2xx = 0
    for ln in out.splitlines():
        if "Non-2xx or 3xx responses:" in ln:
            non_2xx = int(ln.rsplit(":", 1)[1])
    return Run(
        name,
        requests=got["requests"],
        made=got["made"],
        seconds=got["duration_us"] / 1e6,
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        errors=sum(got[k] for k in ("connect", "read", "write", "timeout")),
        non_2xx=non_2xx,
        cpu_s=cpu,
    )


async def measure_duban(
    server: Server,
    platform_name: str,
    script: str,
    data_file: Path,
    pool: int | None,
    args: argparse.Namespace,
) -> Run:
    """One duban run, then the drain; `pool` is how many distinct requests the script has
    (None: every request is a new message)."""
    before = await server.counts(platform_name)
    checkpoint = await last_checkpoint(server.db)
    spy = await server.profile(args.py_spy, args.duration, platform_name) if args.py_spy else None
    run = await wrk(server.url, script, data_file, args, f"duban {platform_name}", server.pid)
    run.checkpoint = checkpoint_ended(checkpoint, await last_checkpoint(server.db))
    cpu = cpu_seconds(server.pid) - run.cpu_s
    if spy is not None:
        await spy.wait()
    started = time.perf_counter()
    after = await server.settle(platform_name, before, patience=args.drain_timeout)
    run.drain_s = time.perf_counter() - started
    run.cpu_s = cpu_seconds(server.pid) - cpu
    delta = after - before
    run.distinct = run.made if pool is None else min(run.made, pool)
    run.accepted, run.recorded = delta.accepted, delta.recorded
    run.refused, run.failed = delta.refused, server.failures()
    return run


def _fmt(run: Run, ceiling: Run | None) -> str:
    ratio = f"{run.rps / ceiling.rps:6.1%}" if ceiling and ceiling.rps else "     -"
    line = (
        f"{run.name:<16} {run.rps:9.0f} {run.p50_ms:8.2f} {run.p99_ms:8.2f} "
        f"{run.errors:6d} {run.non_2xx:7d} {ratio:>7} {run.cpu_ms_per_message:7.2f}"
    )
    if ceiling is not None:
        line += (
            f" {run.distinct:8d} {run.accepted:8d} {run.recorded:8d} {run.refused:6d}"
            f" {run.drain_s:7.1f} {run.handled_rps:9.0f}"
        )
    return line


def print_spread(pairs: list[tuple[Run, Run]]) -> None:
    print()
    for name in ("dingtalk", "wecom"):
        runs = [(c, r) for c, r in pairs if r.name.startswith(f"duban {name}")]
        ratios = sorted(r.rps / c.rps for c, r in runs if c.rps)
        p99s = sorted(r.p99_ms for _, r in runs)
        missed = sum(p > TARGET_P99_MS for p in p99s)
        print(
            f"{name}: {len(runs)} rounds; ratio min {ratios[0]:.1%} median "
            f"{statistics.median(ratios):.1%} max {ratios[-1]:.1%}; p99 ms min {p99s[0]:.1f} "
            f"median {statistics.median(p99s):.1f} max {p99s[-1]:.1f}; "
            f"{missed} over {TARGET_P99_MS:.0f} ms"
        )


def report(
    args: argparse.Namespace, pairs: list[tuple[Run, Run]], server: Server, started: float
) -> bool:
    print()
    print(
        f"{'target':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'non-2xx':>7}"
        f" {'ratio':>7} {'cpu ms':>7} {'distinct':>8} {'accepted':>8} {'recorded':>8}"
        f" {'refused':>6} {'drain s':>7} {'handled/s':>9}"
    )
    ok = True
    for ceiling, run in pairs:
        print(_fmt(ceiling, None))
        print(_fmt(run, ceiling))
        if run.checkpoint:
            print(f"  ({run.name}{run.checkpoint})")
        ratio = run.rps / ceiling.rps if ceiling.rps else 0.0
        # Every message answered with a 200 must have been recorded once the server drained.
        lost = run.recorded < min(run.requests - run.non_2xx, run.distinct)
        ok &= ratio >= TARGET_RATIO and run.p99_ms <= TARGET_P99_MS and not lost
        ok &= run.errors == 0 and run.non_2xx == 0
    if len(pairs) > 2:
        print_spread(pairs)
    rss_start, rss_load = server.peak_start_mb, server.peak_load_mb
    failed = server.failures()
    ok &= failed == 0
    print()
    print(f"messages whose handling failed (server log): {failed}")
    print(
        f"duban serve: ready in {server.ready_s:.1f} s; peak RSS {max(rss_start, rss_load):.0f} MB"
        f" (start-up {rss_start:.0f} MB; under load {rss_load:.0f} MB, from"
        f" {server.rss_ready_mb:.0f} MB when the load began); RSS at the end"
        f" {server.rss_end_mb:.0f} MB"
    )
    print(
        f"targets: ratio ≥ {TARGET_RATIO:.0%} and p99 ≤ {TARGET_P99_MS:.0f} ms per platform, "
        f"every answered check-in recorded, peak RSS ≤ {TARGET_RSS_MB:.0f} MB"
    )
    ok &= max(rss_start, rss_load) <= TARGET_RSS_MB
    print(
        f"database {server.dialect}; {args.units} units; {args.threads} wrk threads; "
        f"c={args.concurrency}; {args.duration} s each; scheduler on; delivery console; "
        f"{platform.node()} nproc={os.cpu_count()} load {os.getloadavg()[0]:.2f}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    print("RESULT", "all targets met" if ok else "a target was missed")
    return ok


def write_round(
    work: Path, ding: list[data.Liaison], wecom: list[data.Liaison], keys: data.Secrets, pool: int
) -> tuple[Path, Path, int]:
    """A round's data files, with message ids no earlier round used (a repeat would be
    answered as a duplicate and cost the server nothing)."""
    now = time.time()
    ding_file, wecom_file = work / "dingtalk.tsv", work / "wecom.tsv"
    prefix = f"bench{time.time_ns()}-"
    data.write_dingtalk(
        ding_file, ding, keys.dingtalk_app_secret, now_ms=int(now * 1000), prefix=prefix
    )
    first_id = time.time_ns() // 1000  # microseconds: 10 s rounds never meet
    made = data.write_wecom(wecom_file, wecom, keys, now_s=int(now), first_id=first_id, pool=pool)
    return ding_file, wecom_file, made


async def main_async(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="duban-bench-inbound-"))
    config = args.config or write_config(work / "config", units=args.units)
    keys = data.Secrets.fresh()
    url, admin_url = await database_for(args.database, work)
    env = keys.env()
    server = Server(url, config, env, work / "serve.log")
    bare: asyncio.subprocess.Process | None = None
    try:
        print(f"starting duban serve on {server.dialect} with {config} …", file=sys.stderr)
        await server.start(patience=args.start_timeout)
        ding = data.liaisons(config, "dingtalk")
        wecom = data.liaisons(config, "wecom")
        print(
            f"{len(ding)} DingTalk and {len(wecom)} WeCom liaisons; server ready in "
            f"{server.ready_s:.1f} s",
            file=sys.stderr,
        )
        bare, bare_url = await Server.bare(work)
        server.reset_peak()
        pairs = []
        for round_no in range(1, args.rounds + 1):
            files = write_round(work, ding, wecom, keys, args.wecom_pool)
            for name, script, file, distinct in (
                ("dingtalk", "dingtalk.lua", files[0], None),
                ("wecom", "wecom.lua", files[1], files[2]),
            ):
                label = f"{name} #{round_no}" if args.rounds > 1 else name
                ceiling = await wrk(bare_url, script, file, args, f"bare ({label})", bare.pid)
                run = await measure_duban(server, name, script, file, distinct, args)
                run.name = f"duban {label}"
                pairs.append((ceiling, run))
                print(_fmt(ceiling, None), file=sys.stderr)
                print(_fmt(run, ceiling), file=sys.stderr)
        await server.stop()
        ok = report(args, pairs, server, started)
        if server.tracebacks:
            print(f"the server logged {server.tracebacks} traceback(s): see {server.log}")
            ok = False
        return 0 if ok else 2
    finally:
        if bare is not None:
            bare.terminate()
            await bare.wait()
        await server.stop()
        if admin_url:
            await drop_database(admin_url, url)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="督办 inbound benchmark (issue 8, benchmark 1)")
    p.add_argument("--database", help="PostgreSQL URL; default a temporary SQLite file")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--threads", type=int, default=min(os.cpu_count() or 2, 4))
    p.add_argument("--units", type=int, default=20000)
    p.add_argument("--config", type=Path, help="an existing configuration instead of --units")
    p.add_argument(
        "--wecom-pool",
        type=int,
        default=80000,
        help="distinct WeCom requests (repeats past it are cheaper duplicates)",
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat both platforms' runs; each must meet"
    )
    p.add_argument("--start-timeout", type=float, default=1800)
    p.add_argument("--drain-timeout", type=float, default=900)
    p.add_argument("--wrk", default=WRK)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--py-spy", metavar="BIN", help="record the server with this py-spy during duban's runs"
    )
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
