"""The stop switch contract, over both implementations: set, seen, cleared, expired."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from bots.errors import StoreUnavailable
from bots.stop_signal import MemoryStopSwitch, RedisStopSwitch, StopSwitch
from tests.bots.redis_fixtures import (  # noqa: F401
    fixture_prefix,
    fixture_redis_client,
    free_port,
)


@pytest.fixture(params=["memory", "redis"])
def switch(request: pytest.FixtureRequest) -> StopSwitch:
    if request.param == "memory":
        return MemoryStopSwitch(ttl_s=0.2)
    client: Redis = request.getfixturevalue("redis_client")
    return RedisStopSwitch(client, prefix=request.getfixturevalue("prefix"), ttl_s=0.2)


async def test_a_stop_is_seen_in_its_chat_only_until_cleared(switch: StopSwitch) -> None:
    await switch.set("c1")

    assert (await switch.stopped("c1"), await switch.stopped("c2")) == (True, False)
    await switch.clear("c1")
    assert await switch.stopped("c1") is False


async def test_a_stop_expires_on_its_own(switch: StopSwitch) -> None:
    await switch.set("c1")
    await asyncio.sleep(0.3)
    await switch.set("c2")  # the memory switch forgets expired chats when it writes

    assert (await switch.stopped("c1"), await switch.stopped("c2")) == (False, True)


async def test_an_unreachable_redis_is_a_store_error() -> None:
    client = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=None
    )
    switch = RedisStopSwitch(client, timeout_s=0.3)
    try:
        for call in (switch.set, switch.clear, switch.stopped):
            with pytest.raises(StoreUnavailable):
                await call("c1")
    finally:
        await client.aclose()
