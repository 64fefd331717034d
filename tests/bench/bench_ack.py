"""Benchmark: Telegram webhook acknowledgement, tierbot (durable) against aiogram's handler.

Run on demand: `python3 -m uv run python -m tests.bench.bench_ack [--requests N] [--rounds R]`.

Two servers, each in its own OS process on 127.0.0.1, take the same Telegram updates from one
load generator (this process) over 40 concurrent keep-alive connections (Telegram's default
`max_connections`):
- aiogram: `SimpleRequestHandler` with `handle_in_background=True` and a no-op message handler;
  it answers 200 after parsing, *without* a durable write (the work lives in process memory);
- tierbot: `bots.webhooks` in front of the Redis Streams queue on 127.0.0.1:6379: secret check,
  strict parse, Lua dedupe+XADD (concurrent requests share a script call), then 200.
Both servers run side by side and the load alternates between them in `--rounds` rounds
(ABBA...), so a machine shared with other work loads both alike. Printed: throughput, p50/p99
latency, CPU time per request of the server process and of redis-server (during each server's
rounds; other clients of that Redis count too), the throughput ratio of each round and their
median (targets: tierbot throughput at least aiogram's, tierbot p99 <= 50 ms), and the CPU
ratio, which drifting machine load disturbs less than throughput.
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
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(slots=True)
class _Server:
    """One server process and what the rounds measured against it."""

    kind: str
    process: asyncio.subprocess.Process
    port: int
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    """What redis-server used meanwhile (any other client's work included)."""
    requests: int = 0
    errors: int = 0
    rates: list[float] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _spawn(kind: str) -> _Server:
    port = _free_port()
    args = [sys.executable, "-m", "tests.bench.bench_ack", "--serve", kind, "--port", str(port)]
    return _Server(kind=kind, process=await asyncio.create_subprocess_exec(*args), port=port)


async def _stop(server: _Server) -> None:
    if server.process.returncode is None:
        server.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        await server.process.wait()


async def _redis_pid() -> int:
    """The pid of the redis-server the tierbot server uses (it runs on this machine)."""
    redis = Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5)
    try:
        async with asyncio.timeout(5):
            info = await redis.info("server")
    finally:
        await redis.aclose()
    pid: int = info["process_id"]
    return pid


async def _round(server: _Server, requests: int, first_id: int, redis_pid: int) -> None:
    cpu_before = _cpu_seconds(server.process.pid)
    redis_before = _cpu_seconds(redis_pid)
    latencies, seconds, errors = await _load(_url(server), requests, first_id)
    server.cpu_s += _cpu_seconds(server.process.pid) - cpu_before
    server.redis_cpu_s += _cpu_seconds(redis_pid) - redis_before
    server.latencies += latencies
    server.seconds += seconds
    server.requests += requests
    server.errors += errors
    server.rates.append(requests / seconds)


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.port}{PATH}"


async def _bench(requests: int, rounds: int) -> None:
    out = sys.stdout
    out.write(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} (other work competes for the cores)\n"
    )
    out.write(
        f"{requests} Telegram updates per server in {rounds} alternating rounds, "
        f"{CONNECTIONS} concurrent connections\n"
    )
    redis_pid = await _redis_pid()
    servers: list[_Server] = []
    try:
        for kind in ("aiogram", "tierbot"):
            servers.append(await _spawn(kind))
            await _wait_listening(servers[-1].port)
            await _load(_url(servers[-1]), 500, 1)  # warm-up
        per_round = requests // rounds
        for n in range(rounds):  # alternate the order, so drifting machine load hits both
            for server in servers if n % 2 == 0 else servers[::-1]:
                await _round(server, per_round, 1_000_000 * (n + 1), redis_pid)
    finally:
        for server in servers:
            await _stop(server)
    aiogram, tierbot = servers
    ratios = [ours / theirs for ours, theirs in zip(tierbot.rates, aiogram.rates, strict=True)]
    for server in servers:
        durable = "durable (Redis Lua enqueue)" if server is tierbot else "in memory only"
        cuts = statistics.quantiles(server.latencies, n=100)
        out.write(
            f"  {server.kind:8} {server.requests / server.seconds:8.0f} req/s  "
            f"p50 {statistics.median(server.latencies):6.2f} ms  p99 {cuts[98]:6.2f} ms  "
            f"CPU/request: server {server.cpu_s / server.requests * 1e6:4.0f} us, "
            f"redis {server.redis_cpu_s / server.requests * 1e6:3.0f} us  "
            f"errors {server.errors}  {durable}\n"
        )
    out.write(f"per-round throughput ratios: {', '.join(f'{r:.2f}' for r in ratios)}\n")
    out.write(
        f"throughput ratio tierbot/aiogram: {statistics.median(ratios):.2f} "
        "(median of rounds; target >= 1.0)\n"
    )
    cost = (tierbot.cpu_s + tierbot.redis_cpu_s) / tierbot.requests
    out.write(
        f"CPU per request aiogram/(tierbot + redis): {aiogram.cpu_s / aiogram.requests / cost:.2f} "
        "(less noisy than throughput on a busy machine; > 1: tierbot needs less)\n"
    )
    p99 = statistics.quantiles(tierbot.latencies, n=100)[98]
    out.write(f"tierbot p99: {p99:.2f} ms (target <= 50 ms)\n")
    out.write(f"load average at the end: {os.getloadavg()[0]:.1f}\n")


def main() -> None:
    """Run the benchmark, or (with --serve) one of its servers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=["aiogram", "tierbot"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.serve == "aiogram":
        asyncio.run(_serve_aiogram(args.port))
    elif args.serve == "tierbot":
        asyncio.run(_serve_tierbot(args.port, f"bench-{uuid.uuid4().hex[:8]}:"))
    else:
        asyncio.run(_bench(args.requests, max(1, args.rounds)))


if __name__ == "__main__":
    main()
