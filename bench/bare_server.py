"""The ceiling for the inbound benchmark: a bare aiohttp server that reads the body and answers 200.

    python bench/bare_server.py PORT

Same aiohttp, same Python, same event loop policy as ``duban serve``, no access log and no
work at all: whatever the bot reaches is measured as a fraction of this, in the same run.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 18090
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
