"""Benchmark: Telegram webhook acknowledgement, tierbot (durable) against aiogram's handler.

Run on demand: `python3 -m uv run python -m tests.bench.bench_ack [--requests N]`.

Two servers, each in its own OS process on 127.0.0.1, take the same Telegram updates from one
load generator (this process) over 40 concurrent keep-alive connections (Telegram's default
`max_connections`):
- aiogram: `SimpleRequestHandler` with `handle_in_background=True` and a no-op message handler;
  it answers 200 after parsing, *without* a durable write (the work lives in process memory);
- tierbot: `bots.webhooks` in front of the Redis Streams queue on 127.0.0.1:6379: secret check,
  strict parse, one Lua dedupe+XADD, then 200.
Printed: throughput, p50/p99 latency per server and the ratios (targets: tierbot throughput at
least aiogram's, tierbot p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import time
import uuid

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis

from bots.channel_settings import ChannelSettings
from bots.constants import PIPELINE_PREFIX
from bots.queue_redis import RedisQueue
from bots.webhooks import add_webhook_routes

SECRET = "bench-secret-123"
TOKEN = "42:BENCHTOKEN"
PATH = "/telegram/webhook"
CONNECTIONS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _serve_aiogram(port: int) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def ignore(message: Message) -> None:
        return None

    bot = Bot(TOKEN)
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token=SECRET).register(app, path=PATH)
    await _run(app, port)
    await bot.session.close()


async def _serve_tierbot(port: int, prefix: str) -> None:
    redis = Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5)
    queue = RedisQueue(redis, prefix=prefix + PIPELINE_PREFIX)
    channels = ChannelSettings(
        telegram_bot_token=SecretStr(TOKEN), telegram_webhook_secret=SecretStr(SECRET)
    )
    app = web.Application()
    add_webhook_routes(app, channels=channels, enqueue=queue.enqueue, id_key=b"bench-key")
    await _run(app, port)
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _run(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncio.timeout(600):  # never outlive a crashed bench
        await stop.wait()
    await runner.cleanup()


def _update(update_id: int) -> bytes:
    chat = {"id": 1000 + update_id % 500, "type": "private"}
    message = {
        "message_id": update_id,
        "date": 1_700_000_000,
        "chat": chat,
        "from": {"id": chat["id"], "is_bot": False, "first_name": "U"},
        "text": "How do I reset my router?",
    }
    return json.dumps({"update_id": update_id, "message": message}).encode()


async def _load(url: str, requests: int, first_id: int) -> tuple[list[float], float, int]:
    """POST `requests` updates over 40 connections; return latencies (ms), seconds, errors."""
    latencies: list[float] = []
    errors = 0
    next_id = first_id
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_id, errors
            while next_id < first_id + requests:
                body = _update(next_id)
                next_id += 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        async with asyncio.timeout(300):
            await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return latencies, time.perf_counter() - began, errors


async def _wait_listening(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def _measure(kind: str, requests: int) -> tuple[float, float, float, int]:
    port = _free_port()
    args = [sys.executable, "-m", "tests.bench.bench_ack", "--serve", kind, "--port", str(port)]
    server = await asyncio.create_subprocess_exec(*args)
    try:
        await _wait_listening(port)
        url = f"http://127.0.0.1:{port}{PATH}"
        await _load(url, 500, 1)  # warm-up
        latencies, seconds, errors = await _load(url, requests, 1_000_000)
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await server.wait()
    cuts = statistics.quantiles(latencies, n=100)
    return requests / seconds, statistics.median(latencies), cuts[98], errors


async def _bench(requests: int) -> None:
    out = sys.stdout
    out.write(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    out.write(f"{requests} Telegram updates per server, {CONNECTIONS} concurrent connections\n")
    results = {kind: await _measure(kind, requests) for kind in ("aiogram", "tierbot")}
    for kind, (rps, p50, p99, errors) in results.items():
        durable = "durable (Redis Lua enqueue)" if kind == "tierbot" else "in memory only"
        out.write(
            f"  {kind:8} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"errors {errors}  {durable}\n"
        )
    ours, theirs = results["tierbot"], results["aiogram"]
    out.write(f"throughput ratio tierbot/aiogram: {ours[0] / theirs[0]:.2f} (target >= 1.0)\n")
    out.write(f"tierbot p99: {ours[2]:.2f} ms (target <= 50 ms)\n")


def main() -> None:
    """Run the benchmark, or (with --serve) one of its servers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=["aiogram", "tierbot"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    if args.serve == "aiogram":
        asyncio.run(_serve_aiogram(args.port))
    elif args.serve == "tierbot":
        asyncio.run(_serve_tierbot(args.port, f"bench-{uuid.uuid4().hex[:8]}:"))
    else:
        asyncio.run(_bench(args.requests))


if __name__ == "__main__":
    main()
