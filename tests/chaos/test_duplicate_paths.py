"""Two ways a chat got the same answer twice without a crash, found by the chaos runs and
reproduced here deterministically with the real `ChatTurns` on Redis. Both are logged (the
second attempt warns "answering again after an unfinished attempt").

The first (the outbox's "sent" record lost to a Redis blip just after the answer went out) is
fixed: `ChatTurns` retries that write for about 1.5 s. The second (a worker whose event loop
stalled past the chat lock's TTL still delivered, while the lock's new holder answered too) is
fixed: the heartbeat that finds the lock taken cancels the turn before it delivers, and one
that finds it free takes it back, so the other worker parks its message instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from redis.asyncio import Redis

from bots.chat_state import ChatSettings, ChatTurns
from bots.chat_state_redis import RedisChatGate, RedisOutbox
from bots.errors import StoreUnavailable
from bots.queue import Entry, QueueSettings
from bots.queue_redis import RedisQueue
from tests.bots.pipeline_support import TTL, message
from tests.bots.redis_fixtures import (  # noqa: F401
    PrivateRedis,
    fixture_prefix,
    fixture_private_redis,
    fixture_redis_client,
)
from tests.chaos.fault_proxy import FaultProxy


def turns_on(
    client: Redis, prefix: str, chat: ChatSettings, handler: object
) -> tuple[RedisQueue, ChatTurns]:
    queue = RedisQueue(client, QueueSettings(block_ms=50, min_idle_s=0.3), prefix=prefix)
    turns = ChatTurns(
        queue=queue,
        gate=RedisChatGate(client, chat, prefix=prefix),
        outbox=RedisOutbox(client, prefix=prefix),
        handler=handler,  # type: ignore[arg-type]
        settings=chat,
    )
    return queue, turns


@pytest.mark.parametrize(
    ("outage_s", "record_retry_s"),
    [(0.2, 1.5), (2.5, 3.0)],
    ids=["blip", "restart-length outage"],
)
@pytest.mark.timeout(20)
async def test_a_redis_outage_just_after_the_answer_does_not_answer_it_again(
    private_redis: PrivateRedis, outage_s: float, record_retry_s: float
) -> None:
    chat = ChatSettings(lock_ttl_s=0.25, heartbeat_s=0.08, record_retry_s=record_retry_s)
    answers: list[str] = []
    restored = asyncio.Event()
    async with FaultProxy(private_redis.port) as proxy:

        def restore() -> None:
            proxy.passthrough()
            restored.set()

        client = Redis.from_url(proxy.url(), socket_connect_timeout=0.5, socket_timeout=None)

        async def answer(entries: tuple[Entry, ...], /) -> str:
            answers.extend(entry.message.dedupe_key for entry in entries)
            if len(answers) == 1:  # the answer is out; Redis drops away for outage_s
                proxy.reset_all()
                asyncio.get_running_loop().call_later(outage_s, restore)
            return "42"

        queue, turns = turns_on(client, "blip:", chat, answer)
        try:
            await queue.enqueue(message(n=1), TTL)
            [entry] = await queue.read("w1")
            with contextlib.suppress(StoreUnavailable):  # the worker leaves it for redelivery
                await turns.handle(entry, "w1")
            await restored.wait()
            await asyncio.sleep(0.5)  # past min_idle and the lock's TTL
            for again in await queue.claim("w2"):  # what another worker's claim finds
                await turns.handle(again, "w2")
        finally:
            await client.aclose()
    assert answers == ["tg:c1:1"]


@pytest.mark.timeout(20)
async def test_a_worker_that_lost_its_chat_lock_does_not_deliver_its_answer(
    redis_client: Redis, prefix: str
) -> None:
    chat = ChatSettings(lock_ttl_s=0.3, heartbeat_s=0.1)
    answers: list[tuple[str, str]] = []
    stalled = asyncio.Event()

    async def slow(entries: tuple[Entry, ...], /) -> str:
        if not stalled.is_set():
            stalled.set()
            time.sleep(0.5)  # noqa: ASYNC251 (a stalled event loop: no heartbeat for 0.5 s)
            await asyncio.sleep(0.4)  # still streaming when the loop runs again
        answers.extend(("slow", entry.message.dedupe_key) for entry in entries)
        return "1"

    async def rescuer(entries: tuple[Entry, ...], /) -> str:
        answers.extend(("rescuer", entry.message.dedupe_key) for entry in entries)
        return "2"

    queue, slow_turns = turns_on(redis_client, prefix, chat, slow)
    _, rescuer_turns = turns_on(redis_client, prefix, chat, rescuer)
    await queue.enqueue(message(n=1), TTL)
    [first] = await queue.read("w1")
    stalling = asyncio.create_task(slow_turns.handle(first, "w1"))
    await stalled.wait()
    await queue.enqueue(message(n=2), TTL)  # the user writes again meanwhile
    [second] = await queue.read("w2")
    # The lock expired during the stall. Whichever comes first after it takes the chat: the
    # stalled worker's heartbeat (it takes the free lock again and answers both messages) or
    # the other worker's admission (it answers both; the stalled turn is stopped unanswered).
    await rescuer_turns.handle(second, "w2")
    await stalling
    assert sorted(key for _, key in answers) == ["tg:c1:1", "tg:c1:2"], answers
    assert (await queue.stats()).pending == 0
