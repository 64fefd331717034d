"""Chaos: SIGKILLed worker processes (reliability T2-T4) and a killed Redis at enqueue (T5).

Worker processes run `tests.bots.queue_worker` against the machine's Redis under the test's
prefix with the test settings of T4: `min_idle` 2 s, a claim every 1 s, chat locks of 1 s
renewed every 0.3 s. A killed redis-server is a private one; "killed" here means a process
crash, not a host crash, and the server runs without persistence.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from bots.chat_state import OutboxRecord
from bots.chat_state_redis import RedisOutbox
from bots.errors import QueueUnavailable
from bots.queue import QueueSettings
from bots.queue_redis import RedisQueue
from tests.bots.pipeline_support import TTL, message
from tests.bots.redis_fixtures import (  # noqa: F401
    REDIS_URL,
    ROOT,
    PrivateRedis,
    connect,
    fixture_prefix,
    fixture_private_redis,
    fixture_redis_client,
)

logger = logging.getLogger(__name__)

RECLAIM_BOUND_S = 3.5
"""T4: min_idle (2 s) + claim interval (1 s) + slack."""


class Worker:
    """One `tests.bots.queue_worker` process; `line` reads what it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout_s: float = 10.0) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout_s):
            return (await self.process.stdout.readline()).decode().strip()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def stderr(self) -> str:
        """Everything the (killed) worker wrote to stderr."""
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


@asynccontextmanager
async def worker(prefix: str, name: str, *options: str) -> AsyncIterator[Worker]:
    """Run a worker process until it prints `ready`; kill it on the way out."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.bots.queue_worker", "--url", REDIS_URL),
        *("--prefix", prefix, "--consumer", name, "--results", f"{prefix}results", *options),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Worker(process)
    try:
        assert await running.line() == "ready"
        yield running
    finally:
        await running.kill()


async def settled(queue: RedisQueue, timeout_s: float = 5.0) -> None:
    """Wait until nothing is pending or waiting in the queue."""
    async with asyncio.timeout(timeout_s):
        while (await queue.stats()).depth:  # noqa: ASYNC110 (the state is in other processes)
            await asyncio.sleep(0.05)


@pytest.mark.timeout(40)
async def test_a_killed_workers_message_is_answered_once_by_another(
    redis_client: Redis, prefix: str
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    outbox = RedisOutbox(redis_client, prefix=prefix)
    delays: list[float] = []
    for round_ in range(3):
        async with worker(prefix, f"victim{round_}", "--work-s", "30") as victim:
            await queue.enqueue(message(n=round_), TTL)
            assert await victim.line() == f"started tg:c1:{round_} 1"
            async with worker(prefix, "rescuer", "--work-s", "0.1") as rescuer:
                await victim.kill()
                killed = time.monotonic()
                assert await rescuer.line(RECLAIM_BOUND_S + 1) == f"started tg:c1:{round_} 2"
                delays.append(time.monotonic() - killed)
                await settled(queue)
        assert await outbox.get(f"tg:c1:{round_}") == OutboxRecord(
            status="sent", platform_message_id="sent-by-rescuer"
        )
    results = await redis_client.lrange(f"{prefix}results", 0, -1)
    assert results == [f"tg:c1:{n} rescuer".encode() for n in range(3)]
    logger.info("reclaim after SIGKILL: %s s", ", ".join(f"{d:.2f}" for d in delays))
    assert max(delays) <= RECLAIM_BOUND_S


@pytest.mark.timeout(30)
async def test_a_kill_between_the_answer_and_the_outbox_is_a_logged_duplicate(
    redis_client: Redis, prefix: str
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    async with worker(prefix, "victim", "--die-after-effect") as victim:
        await queue.enqueue(message(), TTL)
        assert await victim.line() == "started tg:c1:1 1"
        assert await victim.process.wait() == -9  # killed itself after its RPUSH
    async with worker(prefix, "rescuer") as rescuer:
        assert await rescuer.line(RECLAIM_BOUND_S + 1) == "started tg:c1:1 2"
        await settled(queue)
        await rescuer.kill()
        logged = await rescuer.stderr()
    results = await redis_client.lrange(f"{prefix}results", 0, -1)
    assert results == [b"tg:c1:1 victim", b"tg:c1:1 rescuer"]
    assert (
        "WARNING bots.chat_state: answering again after an unfinished attempt; the earlier "
        "answer may have gone out entry="
    ) in logged
    assert "deliveries=2" in logged


@pytest.mark.timeout(30)
async def test_a_killed_redis_fails_enqueue_within_a_second_and_recovers_alone(
    private_redis: PrivateRedis,
) -> None:
    client = await connect(private_redis.url)
    queue = RedisQueue(client, QueueSettings(block_ms=50))
    try:
        assert await queue.enqueue(message(n=1), TTL)
        await private_redis.kill()
        latencies = []
        for n in range(2, 7):
            started = time.monotonic()
            with pytest.raises(QueueUnavailable):
                await queue.enqueue(message(n=n), TTL)
            latencies.append(time.monotonic() - started)
        await private_redis.start()
        assert await queue.enqueue(message(n=7), TTL)  # same client, no operator action
        [entry] = await queue.read("w1")  # the consumer group is recreated as well
        assert (entry.seq, entry.message.dedupe_key) == (1, "tg:c1:7")
    finally:
        await client.aclose()
    logger.info("enqueue with Redis down: %s s", ", ".join(f"{s:.3f}" for s in latencies))
    assert max(latencies) < 1.0
