"""The `HistoryStore` contract over the memory and Redis stores, then Redis-only behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from bots.errors import StoreUnavailable
from bots.history import HistorySettings, HistoryStore, MemoryHistory, RedisHistory
from routing.types import Turn
from tests.bots.redis_fixtures import fixture_prefix, fixture_redis_client, free_port  # noqa: F401

MakeHistory = Callable[[HistorySettings], HistoryStore]


def turn(n: int, role: str = "user", turn_id: str | None = "auto") -> Turn:
    return Turn(
        role="user" if role == "user" else "assistant",
        text=f"turn {n} — ünïcode",
        ts=1_700_000_000.0 + n,
        tier=1 + n % 3,
        turn_id=f"t{n}" if turn_id == "auto" else turn_id,
    )


@pytest.fixture(params=["memory", "redis"])
def make_history(request: pytest.FixtureRequest) -> MakeHistory:
    if request.param == "memory":
        return lambda settings: MemoryHistory(settings)
    client: Redis = request.getfixturevalue("redis_client")
    name: str = request.getfixturevalue("prefix")
    return lambda settings: RedisHistory(client, settings, prefix=name)


@pytest.fixture
def history(make_history: MakeHistory) -> HistoryStore:
    return make_history(HistorySettings(max_turns=4))


async def test_turns_come_back_in_order_with_every_field(history: HistoryStore) -> None:
    assert await history.load("c1") == ()
    await history.append("c1", [turn(1), turn(2, "assistant")])
    await history.append("c1", [turn(3, turn_id=None)])
    await history.append("c1", [])
    assert await history.load("c1") == (turn(1), turn(2, "assistant"), turn(3, turn_id=None))
    assert await history.load("c2") == ()


async def test_only_the_newest_max_turns_are_kept(history: HistoryStore) -> None:
    await history.append("c1", [turn(n) for n in range(1, 4)])
    await history.append("c1", [turn(n) for n in range(4, 7)])
    assert [t.text.split()[1] for t in await history.load("c1")] == ["3", "4", "5", "6"]


async def test_a_retried_append_does_not_repeat_turns(history: HistoryStore) -> None:
    await history.append("c1", [turn(1), turn(2)])
    await history.append("c1", [turn(2), turn(3), turn(3)])
    await history.append("c1", [turn(9, turn_id=None), turn(9, turn_id=None)])
    assert [t.turn_id for t in await history.load("c1")] == ["t2", "t3", None, None]


async def test_history_expires_after_its_ttl_since_the_last_append(
    make_history: MakeHistory,
) -> None:
    history = make_history(HistorySettings(ttl_s=0.3))
    await history.append("c1", [turn(1)])
    await asyncio.sleep(0.2)
    await history.append("c1", [turn(2)])
    await asyncio.sleep(0.2)
    assert len(await history.load("c1")) == 2
    await asyncio.sleep(0.2)
    assert await history.load("c1") == ()


async def test_clear_forgets_one_chat(history: HistoryStore) -> None:
    await history.append("c1", [turn(1)])
    await history.append("c2", [turn(2)])
    await history.clear("c1")
    await history.clear("c3")
    assert (await history.load("c1"), await history.load("c2")) == ((), (turn(2),))


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match="max_turns=0"):
        HistorySettings(max_turns=0)


async def test_redis_keys_carry_the_prefix_and_ttl(redis_client: Redis, prefix: str) -> None:
    history = RedisHistory(redis_client, HistorySettings(ttl_s=3600), prefix=prefix)
    await history.append("c1", [turn(1)])
    assert await redis_client.llen(f"{prefix}c1") == 1
    assert 3590 < await redis_client.ttl(f"{prefix}c1") <= 3600


async def test_an_unreachable_redis_raises_store_unavailable() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    history = RedisHistory(client, HistorySettings(timeout_s=0.5))
    try:
        for call in (
            lambda: history.append("c1", [turn(1)]),
            lambda: history.load("c1"),
            lambda: history.clear("c1"),
        ):
            with pytest.raises(StoreUnavailable, match="history"):
                await call()
    finally:
        await client.aclose()
