"""The load benchmark's acknowledgement baseline: a bare aiohttp server that reads each webhook
body and answers 200, with no check, parse or write, in a process of its own.

Run by `bench_load` (through `endpoint_procs.start_child`): `python -m tests.bench.load_baseline
--port N`; it serves the Telegram and WhatsApp webhook paths and `/readyz` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from aiohttp import web

from bots.webhooks import TELEGRAM_PATH, WHATSAPP_PATH


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


async def serve(port: int, max_seconds: float) -> None:
    """Serve until SIGTERM or SIGINT (or `max_seconds`), with aiohttp's defaults."""
    app = web.Application()
    app.router.add_post(TELEGRAM_PATH, _ok)
    app.router.add_post(WHATSAPP_PATH, _ok)
    app.router.add_get("/readyz", _ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    await runner.cleanup()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
