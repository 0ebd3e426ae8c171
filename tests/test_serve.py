"""`duban serve` as a real process: health, readiness, clean stops, refusals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.configs import ENV, mini, write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(database_url: str, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
    env.update(
        ENV,
        DUBAN_DATABASE_URL=database_url,
        DUBAN_CONFIG=str(config),
        DUBAN_HOST="127.0.0.1",
        DUBAN_LOG_LEVEL="INFO",
        **extra,
    )
    return env


async def duban(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):  # bounded: 30 s at most for the process to come up
            if proc.returncode is not None:
                raise AssertionError((await proc.stderr.read()).decode())  # type: ignore[union-attr]
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not come up")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serve_answers_health_and_stops_cleanly(database_url, tmp_path, sig) -> None:
    port = free_port()
    proc = await duban(
        "serve", env=env_for(database_url, write(tmp_path, mini()), DUBAN_PORT=str(port))
    )
    try:
        await wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert (await r.json()) == {"status": "ok"}
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                body = await r.json()
                assert r.status == 200, body
                assert body["checks"] == {"database": True, "schema": True, "scheduler": True}
    finally:
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    log = err.decode()
    assert "schema upgraded from empty" in log
    assert "configuration applied" in log
    assert "duban stopped" in log
    assert "Traceback" not in log


@pytest.mark.parametrize(("setting", "logged"), [(None, False), ("true", True)])
async def test_the_access_log_is_kept_only_when_asked_for(
    database_url, tmp_path, setting, logged
) -> None:
    port = free_port()
    extra = {"DUBAN_ACCESS_LOG": setting} if setting else {}
    env = env_for(database_url, write(tmp_path, mini()), DUBAN_PORT=str(port), **extra)
    proc = await duban("serve", env=env)
    try:
        await wait_healthy(port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert ('"GET /healthz HTTP/1.1" 200' in err.decode()) is logged


async def test_serve_refuses_an_invalid_configuration(database_url, tmp_path) -> None:
    data = mini()
    data["communities"][0]["lead"] = "ghost"
    proc = await duban(
        "serve", env=env_for(database_url, write(tmp_path, data), DUBAN_PORT=str(free_port()))
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert "communities[0].lead" in err.decode() and "单位“ghost”不存在" in err.decode()


async def test_serve_refuses_an_outdated_schema_when_not_migrating(database_url, tmp_path) -> None:
    proc = await duban(
        "serve",
        env=env_for(
            database_url,
            write(tmp_path, mini()),
            DUBAN_PORT=str(free_port()),
            DUBAN_AUTO_MIGRATE="false",
        ),
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert "duban db upgrade" in err.decode()
    assert "Traceback" not in err.decode()


async def test_cli_upgrade_check_and_apply(database_url, tmp_path) -> None:
    env = env_for(database_url, write(tmp_path, mini()))
    proc = await duban("db", "upgrade", env=env)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    proc = await duban("db", "current", env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and "head:" in out.decode()
    proc = await duban("config", "check", env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and "2 个单位" in out.decode()
    proc = await duban("config", "apply", env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and "新增 unit 2" in out.decode()
    proc = await duban("config", "apply", env=env)
    out, _ = await proc.communicate()
    assert "无变化" in out.decode()


async def test_cli_config_check_reports_and_fails(tmp_path) -> None:
    data = mini()
    data["tasks"][0]["due"] = "看情况"
    data["units"][0]["nickname"] = "x"
    bad = write(tmp_path, data)
    env = env_for("sqlite+aiosqlite:///unused.db", tmp_path)
    proc = await duban("config", "check", str(bad), env=env)
    _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 1
    assert "2 处错误" in text and "tasks[0].due" in text and "units[0].nickname" in text
