"""A queue worker process for the bulk chaos runs: the production `Worker` loop and `ChatTurns`
on the Redis queue, gate and outbox, with a turn handler whose only side effect is a record on
a separate "platform" Redis (the machine's), so effects survive whatever happens to the queue's.

Unlike `tests.bots.queue_worker` (a bare read/claim loop that exits when Redis goes away), this
runs `bots.worker.Worker`, which backs off and carries on through a Redis outage, the way a
`tierbot serve --role worker` process does. Usage (as `main(argv)`, normally through
`tests.chaos.zygote`): `--url URL --prefix P --effects-url URL --effects KEY --consumer NAME
--seed N`; each turn works 1-30 ms (seeded), then RPUSHes `<chat> <seq> <dedupe_key>
<consumer> <deliveries>` per entry to `--effects`, in the turn's order. SIGTERM stops it
gracefully (`Worker.stop`: in-flight turns finish, for at most a second).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
from collections.abc import Sequence

from redis.asyncio import Redis

from bots.chat_state import ChatSettings, ChatTurns, check_timing
from bots.chat_state_redis import RedisChatGate, RedisOutbox
from bots.queue import Entry, QueueSettings
from bots.queue_redis import RedisQueue
from bots.turn_fence import before_final_answer
from bots.worker import Worker, WorkerOptions

READY = "effect worker ready"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effect_worker", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--effects-url", required=True)
    parser.add_argument("--effects", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--min-idle", type=float, default=2.0)
    parser.add_argument("--claim-interval", type=float, default=0.5)
    parser.add_argument("--lock-ttl", type=float, default=1.0)
    parser.add_argument("--max-deliveries", type=int, default=5)
    return parser


async def run(args: argparse.Namespace) -> int:
    """Consume until killed."""
    rng = random.Random(args.seed)
    redis = Redis.from_url(args.url, socket_connect_timeout=0.5, socket_timeout=None)
    effects = Redis.from_url(args.effects_url, socket_connect_timeout=1, socket_timeout=None)
    queue_settings = QueueSettings(
        min_idle_s=args.min_idle, claim_interval_s=args.claim_interval, block_ms=200
    )
    chat_settings = ChatSettings.for_queue(
        queue_settings, lock_ttl_s=args.lock_ttl, max_deliveries=args.max_deliveries
    )
    check_timing(queue_settings, chat_settings)

    async def answer(entries: tuple[Entry, ...], /) -> str:
        await asyncio.sleep(rng.uniform(0.001, 0.030))
        await before_final_answer()  # as the channels do before the final message
        records = [
            f"{e.message.chat_id} {e.seq} {e.message.dedupe_key} {args.consumer} {e.deliveries}"
            for e in entries
        ]
        async with asyncio.timeout(5):
            await effects.rpush(args.effects, *records)
        return f"sent-by-{args.consumer}"

    queue = RedisQueue(redis, queue_settings, prefix=args.prefix)
    turns = ChatTurns(
        queue=queue,
        gate=RedisChatGate(redis, chat_settings, prefix=args.prefix),
        outbox=RedisOutbox(redis, prefix=args.prefix),
        handler=answer,
        settings=chat_settings,
    )
    options = WorkerOptions(
        consumer=args.consumer,
        concurrency=args.concurrency,
        claim_interval_s=args.claim_interval,
        shutdown_grace_s=1.0,
    )
    worker = Worker(queue=queue, handler=turns, options=options)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    sys.stderr.write(f"{READY} consumer={args.consumer}\n")
    sys.stderr.flush()
    try:
        await worker.run()
    finally:
        await redis.aclose()
        await effects.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and consume until killed."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
