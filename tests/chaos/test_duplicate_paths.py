"""Two ways a chat got the same answer twice without a crash, found by the chaos runs and
reproduced here deterministically with the real `ChatTurns` on Redis. Both are logged (the
second attempt warns "answering again after an unfinished attempt").

The first (the outbox's "sent" record lost to a Redis blip just after the answer went out) is
fixed: `ChatTurns` retries that write for about 1.5 s. The second (a worker whose event loop
stalled past 2/3 of the chat lock's TTL still delivers, while the lock's new holder answers
too) is marked xfail (strict) until `bots/chat_state.py` cancels a turn whose lock is lost, so
the fix shows up as an XPASS to remove the marker.
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


@pytest.mark.timeout(20)
async def test_a_redis_blip_just_after_the_answer_does_not_answer_it_again(
    private_redis: PrivateRedis,
) -> None:
    chat = ChatSettings(lock_ttl_s=0.25, heartbeat_s=0.08)
    answers: list[str] = []
    async with FaultProxy(private_redis.port) as proxy:
        client = Redis.from_url(proxy.url(), socket_connect_timeout=0.5, socket_timeout=None)

        async def answer(entries: tuple[Entry, ...], /) -> str:
            answers.extend(entry.message.dedupe_key for entry in entries)
            if len(answers) == 1:  # the answer is out; Redis drops away for 0.2 s
                proxy.reset_all()
                asyncio.get_running_loop().call_later(0.2, proxy.passthrough)
            return "42"

        queue, turns = turns_on(client, "blip:", chat, answer)
        try:
            await queue.enqueue(message(n=1), TTL)
            [entry] = await queue.read("w1")
            with contextlib.suppress(StoreUnavailable):  # the worker leaves it for redelivery
                await turns.handle(entry, "w1")
            await asyncio.sleep(0.5)  # past min_idle and the lock's TTL
            for again in await queue.claim("w2"):  # what another worker's claim finds
                await turns.handle(again, "w2")
        finally:
            await client.aclose()
    assert answers == ["tg:c1:1"]


@pytest.mark.xfail(
    strict=True,
    reason="bug: a worker that lost its chat lock while answering (its event loop stalled past "
    "the lock's TTL) still delivers its answer, while the lock's new holder answers the same "
    "messages again",
)
@pytest.mark.timeout(20)
async def test_a_worker_that_lost_its_chat_lock_does_not_deliver_its_answer(
    redis_client: Redis, prefix: str
) -> None:
    chat = ChatSettings(lock_ttl_s=0.3, heartbeat_s=0.1)
    answers: list[tuple[str, str]] = []
    stalled, taken_over = asyncio.Event(), asyncio.Event()

    async def slow(entries: tuple[Entry, ...], /) -> str:
        stalled.set()
        time.sleep(0.5)  # noqa: ASYNC251 (a stalled event loop: no heartbeat for 0.5 s)
        async with asyncio.timeout(5):
            await taken_over.wait()
        answers.extend(("slow", entry.message.dedupe_key) for entry in entries)
        return "1"

    async def rescuer(entries: tuple[Entry, ...], /) -> str:
        answers.extend(("rescuer", entry.message.dedupe_key) for entry in entries)
        taken_over.set()
        return "2"

    queue, slow_turns = turns_on(redis_client, prefix, chat, slow)
    _, rescuer_turns = turns_on(redis_client, prefix, chat, rescuer)
    await queue.enqueue(message(n=1), TTL)
    [first] = await queue.read("w1")
    stalling = asyncio.create_task(slow_turns.handle(first, "w1"))
    await stalled.wait()
    await queue.enqueue(message(n=2), TTL)  # the user writes again meanwhile
    [second] = await queue.read("w2")
    await rescuer_turns.handle(second, "w2")  # the lock has expired: w2 takes the chat
    with contextlib.suppress(Exception):  # the worker's task boundary: logged, left queued
        await stalling
    assert [key for _, key in answers].count("tg:c1:1") == 1, answers
