"""A second OS process for the breaker tests: reports when it first sees a key short-circuited.

Usage: `python -m tests.routing.breaker_worker --url URL --prefix PREFIX --key KEY [--hold S]`.
It prints `ready` once it holds a permit, polls `allow` every 10 ms until it is refused, prints
`blocked`, keeps polling for `--hold` seconds and prints `permits N` (permits granted since).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from redis.asyncio import Redis

from routing.breaker import BreakerConfig
from routing.breaker_redis import RedisBreaker

_POLL_S = 0.01
_GIVE_UP_S = 20.0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def watch(url: str, prefix: str, key: str, hold_s: float) -> int:
    """Poll the shared breaker for `key`; return the exit status."""
    client = Redis.from_url(url)
    try:
        breaker = RedisBreaker(client, config=BreakerConfig(), prefix=prefix)
        if await breaker.allow(key) is None:
            _say("refused")
            return 1
        _say("ready")
        give_up = time.monotonic() + _GIVE_UP_S
        while await breaker.allow(key) is not None:
            if time.monotonic() > give_up:
                _say("never blocked")
                return 1
            await asyncio.sleep(_POLL_S)
        _say("blocked")
        permits = 0
        stop = time.monotonic() + hold_s
        while time.monotonic() < stop:
            permits += await breaker.allow(key) is not None
            await asyncio.sleep(_POLL_S)
        _say(f"permits {permits}")
        return 0
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and watch the breaker."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--hold", type=float, default=1.0)
    args = parser.parse_args(argv)
    return asyncio.run(watch(args.url, args.prefix, args.key, args.hold))


if __name__ == "__main__":
    sys.exit(main())
