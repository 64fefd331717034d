"""The chat ledger contract, over both implementations: message links and retry counts."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from bots.chat_ledger import ChatLedger, MemoryLedger, RedisLedger
from tests.bots.redis_fixtures import fixture_prefix, fixture_redis_client  # noqa: F401


@pytest.fixture(params=["memory", "redis"])
def ledger(request: pytest.FixtureRequest) -> ChatLedger:
    if request.param == "memory":
        return MemoryLedger(ttl_s=0.2)
    client: Redis = request.getfixturevalue("redis_client")
    return RedisLedger(client, prefix=request.getfixturevalue("prefix"), ttl_s=0.2)


async def test_a_message_is_linked_to_its_turn_per_chat(ledger: ChatLedger) -> None:
    await ledger.link("c1", "m1", "turn-a")

    assert await ledger.turn_of("c1", "m1") == "turn-a"
    assert await ledger.turn_of("c2", "m1") is None
    assert await ledger.turn_of("c1", "m2") is None


async def test_retries_count_up_per_chat_and_a_new_question_resets_them(
    ledger: ChatLedger,
) -> None:
    assert await ledger.retries("c1") == 0
    assert [await ledger.add_retry("c1"), await ledger.add_retry("c1")] == [1, 2]
    await ledger.add_retry("c2")

    await ledger.new_question("c1")

    assert (await ledger.retries("c1"), await ledger.retries("c2")) == (0, 1)


async def test_links_and_counts_expire(ledger: ChatLedger) -> None:
    await ledger.link("c1", "m1", "turn-a")
    await ledger.add_retry("c1")
    await asyncio.sleep(0.3)

    assert (await ledger.turn_of("c1", "m1"), await ledger.retries("c1")) == (None, 0)
