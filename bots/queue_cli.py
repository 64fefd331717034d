"""The `tierbot queue` commands: queue figures, and the dead letters an operator replays."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from bots.errors import BotError
from bots.runtime import build_stores, connect_redis
from bots.worker_settings import WorkerSettings


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `queue stats|dead|replay|discard` to the command groups."""
    queue = groups.add_parser("queue", help="the shared message queue (needs REDIS_URL)")
    commands = queue.add_subparsers(dest="command", required=True)
    commands.add_parser("stats", help="depth, pending, oldest pending age, dead letters")
    dead = commands.add_parser("dead", help="list dead letters")
    dead.add_argument("--count", type=int, default=100, help="how many (default 100)")
    replay = commands.add_parser("replay", help="queue a dead letter again (bypasses dedupe)")
    replay.add_argument("id", help="the dead-letter id from `queue dead`")
    discard = commands.add_parser("discard", help="drop a dead letter for good")
    discard.add_argument("id", help="the dead-letter id from `queue dead`")


def run(settings: WorkerSettings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one queue command against REDIS_URL; return the exit status."""
    if settings.redis_url is None:
        err.write(
            "tierbot: REDIS_URL is not set; without it the queue lives inside the serving "
            "process and no other command can reach it\n"
        )
        return 2
    try:
        return asyncio.run(_run(settings, args, out))
    except BotError as exc:
        err.write(f"tierbot: {exc}\n")
        return 1


async def _run(settings: WorkerSettings, args: argparse.Namespace, out: TextIO) -> int:
    redis = connect_redis(settings)
    assert redis is not None  # checked by run()
    try:
        queue = build_stores(settings, redis).queue
        match args.command:
            case "stats":
                s = await queue.stats()
                age = "-" if s.oldest_pending_age_s is None else f"{s.oldest_pending_age_s:.1f} s"
                out.write(
                    f"depth {s.depth}  pending {s.pending}  oldest pending {age}  "
                    f"dead {s.dead}  dropped pending {s.dropped_pending}\n"
                )
            case "dead":
                for d in await queue.list_dead(count=args.count):
                    m = d.message
                    out.write(
                        f"{d.id}  {m.channel}  {m.kind}  seq={d.seq}  "
                        f"deliveries={d.deliveries}  reason={d.reason}\n"
                    )
            case "replay":
                out.write(f"queued again as {await queue.replay(args.id)}\n")
            case _:
                found = await queue.discard(args.id)
                out.write("discarded\n" if found else "no such dead letter\n")
                return 0 if found else 1
        return 0
    finally:
        await redis.aclose()
