"""A small driver for headless Chromium over the DevTools protocol (CDP), with aiohttp's
WebSocket client: enough to open a page on a phone-sized screen, run JavaScript in it and take
a screenshot. No new dependencies; Debian's chromium package provides the browser.

    async with launch(tmp_path) as page:
        await page.phone()
        await page.goto(url)
        title = await page.evaluate("document.title")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = os.environ.get("DUBAN_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)
START_SECONDS = 30.0  # a cold start on a busy two-core machine
CALL_SECONDS = 30.0


class BrowserMissing(RuntimeError):
    pass


class CdpError(RuntimeError):
    pass


class Page:
    """One tab: commands in, results and events out, over its own WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @property
    def log(self) -> list[dict[str, Any]]:
        """Console and browser log entries (Log.entryAdded), e.g. CSP refusals."""
        return [e["params"]["entry"] for e in self._events if e["method"] == "Log.entryAdded"]

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        async with asyncio.timeout(CALL_SECONDS):
            reply = await future
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def event(self, method: str, after: int = 0) -> dict[str, Any]:
        """The first event named `method` among those from index `after` on."""
        async with asyncio.timeout(CALL_SECONDS), self._arrived:
            while True:
                for e in self._events[after:]:
                    if e["method"] == method:
                        return e
                await self._arrived.wait()

    async def phone(self, width: int = 390, height: int = 844) -> None:
        """A phone's screen: narrow, dense pixels, touch, mobile viewport rules."""
        await self.screen(width, height, scale=2, mobile=True)

    async def screen(self, width: int, height: int, *, scale: float, mobile: bool) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=scale,
            mobile=mobile,
        )
        await self.call("Emulation.setTouchEmulationEnabled", enabled=mobile)

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Log.enable")
        mark = len(self._events)
        sent = await self.call("Page.navigate", url=url)
        if "errorText" in sent:
            raise CdpError(f"navigate {url}: {sent['errorText']}")
        await self.event("Page.loadEventFired", after=mark)

    async def evaluate(self, expression: str) -> Any:
        found = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in found:
            raise CdpError(f"script failed: {found['exceptionDetails']}")
        return found["result"].get("value")

    async def screenshot(self, path: Path) -> None:
        """The whole page, not only the screen."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        shot = await self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        _write(path, base64.b64decode(shot["data"]))

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                async with self._arrived:
                    self._events.append(data)
                    self._arrived.notify_all()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the browser closed the connection"))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def launch(workdir: Path) -> AsyncIterator[Page]:
    """Start Chromium with a profile under `workdir`; yields its first tab; stops it after."""
    if shutil.which(CHROMIUM) is None:
        raise BrowserMissing(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
            "(apt-get install chromium; .ci/run does) or set DUBAN_CHROMIUM to its path"
        )
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    errors = (workdir / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        port = await _devtools_port(profile / "DevToolsActivePort", process, workdir)
        async with aiohttp.ClientSession() as http:
            ws_url = await _page_socket(http, port)
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                page = Page(ws)
                try:
                    yield page
                finally:
                    await page.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        errors.close()


async def _devtools_port(marker: Path, process: asyncio.subprocess.Process, workdir: Path) -> int:
    """Chromium writes the port it chose (port 0: any free one) to DevToolsActivePort."""
    async with asyncio.timeout(START_SECONDS):
        while True:
            if process.returncode is not None:
                log = _tail(workdir / "chromium.log")
                raise BrowserMissing(f"Chromium exited with {process.returncode}:\n{log}")
            port = _port(marker)
            if port is not None:
                return port
            await asyncio.sleep(0.05)


async def _page_socket(http: aiohttp.ClientSession, port: int) -> str:
    async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
        targets = await resp.json()
    for target in targets:
        if target.get("type") == "page":
            return str(target["webSocketDebuggerUrl"])
    async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as resp:
        return str((await resp.json())["webSocketDebuggerUrl"])


# Small files, read and written in one go: not worth a thread.
def _port(marker: Path) -> int | None:
    lines = marker.read_text().splitlines() if marker.exists() else []
    return int(lines[0]) if lines and lines[0].isdigit() else None


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
