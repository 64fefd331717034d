"""A queue worker for the pipeline tests: the read/claim loop, and a CLI to run it as a process.

`consume` is the loop a worker runs: read new entries, every `claim_interval_s` also claim
idle ones, and hand each to `ChatTurns`. As a process (`python -m tests.bots.queue_worker
--url URL --prefix PREFIX --consumer NAME --results KEY [--work-s S] [--die-after-effect]`) its
handler prints `started <dedupe_key> <deliveries>`, works for `--work-s`, then RPUSHes
`<dedupe_key> <consumer>` to `--results` (the side effect); with `--die-after-effect` it
SIGKILLs itself right after that push, before the outbox records the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from redis.asyncio import Redis

from bots.chat_state import ChatSettings, ChatTurns, check_timing
from bots.chat_state_redis import RedisChatGate, RedisOutbox
from bots.queue import Entry, Queue, QueueSettings
from bots.queue_redis import RedisQueue


async def consume(
    queue: Queue,
    turns: ChatTurns,
    consumer: str,
    *,
    claim_interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Handle entries until `stop` is set; claims idle entries every `claim_interval_s`."""
    next_claim = time.monotonic() + claim_interval_s
    while not stop.is_set():
        entries = await queue.read(consumer, count=10)
        if time.monotonic() >= next_claim:
            entries += await queue.claim(consumer)
            next_claim = time.monotonic() + claim_interval_s
        for entry in entries:
            await turns.handle(entry, consumer)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> int:
    """Serve the queue under `args.prefix` until killed."""
    client = Redis.from_url(args.url, socket_connect_timeout=1, socket_timeout=None)
    queue_settings = QueueSettings(
        min_idle_s=args.min_idle, claim_interval_s=args.claim_interval, block_ms=100
    )
    chat_settings = ChatSettings(lock_ttl_s=args.lock_ttl, heartbeat_s=args.heartbeat)
    check_timing(queue_settings, chat_settings)

    async def answer(entries: tuple[Entry, ...]) -> str:
        for entry in entries:
            _say(f"started {entry.message.dedupe_key} {entry.deliveries}")
        await asyncio.sleep(args.work_s)
        for entry in entries:
            await client.rpush(args.results, f"{entry.message.dedupe_key} {args.consumer}")
        if args.die_after_effect:
            os.kill(os.getpid(), signal.SIGKILL)
        return f"sent-by-{args.consumer}"

    queue = RedisQueue(client, queue_settings, prefix=args.prefix)
    turns = ChatTurns(
        queue=queue,
        gate=RedisChatGate(client, chat_settings, prefix=args.prefix),
        outbox=RedisOutbox(client, prefix=args.prefix),
        handler=answer,
        settings=chat_settings,
    )
    try:
        _say("ready")
        await consume(
            queue, turns, args.consumer, claim_interval_s=args.claim_interval, stop=asyncio.Event()
        )
    finally:
        await client.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the worker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--work-s", type=float, default=0.05)
    parser.add_argument("--min-idle", type=float, default=2.0)
    parser.add_argument("--claim-interval", type=float, default=1.0)
    parser.add_argument("--lock-ttl", type=float, default=1.0)
    parser.add_argument("--heartbeat", type=float, default=0.3)
    parser.add_argument("--die-after-effect", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
