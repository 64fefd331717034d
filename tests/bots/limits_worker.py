"""A second OS process for the rate-limit test: fires concurrent hits when told to.

Usage: `python -m tests.bots.limits_worker --url URL --prefix PREFIX --user USER --hits N`.
It prints `ready`, waits for a line on stdin, fires N concurrent `hit`s against the default
rule (20 per minute) and prints `allowed K`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from redis.asyncio import Redis

from bots.limits import LimitSettings, RedisRateLimiter


async def fire(url: str, prefix: str, user: str, hits: int) -> int:
    """Wait for the go line, then hit the limiter `hits` times at once."""
    client = Redis.from_url(url, socket_timeout=None)
    try:
        limiter = RedisRateLimiter(client, LimitSettings(timeout_s=5), prefix=prefix)
        await client.ping()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        decisions = await asyncio.gather(*(limiter.hit(user) for _ in range(hits)))
        sys.stdout.write(f"allowed {sum(d.allowed for d in decisions)}\n")
        sys.stdout.flush()
        return 0
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and fire."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--hits", type=int, default=30)
    args = parser.parse_args(argv)
    return asyncio.run(fire(args.url, args.prefix, args.user, args.hits))


if __name__ == "__main__":
    sys.exit(main())
