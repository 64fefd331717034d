"""The stop switch contract, over both implementations: a press stops its own draft only, while
it streams; presses for finished, expired or unknown drafts are ignored and counted."""

from __future__ import annotations

import asyncio
import logging

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


async def flags(switch: StopSwitch, *drafts: tuple[str, str]) -> list[bool]:
    return [await switch.stopped(chat, draft) for chat, draft in drafts]


async def test_a_press_stops_its_own_draft_only(switch: StopSwitch) -> None:
    await switch.open("c1", "7")
    await switch.open("c1", "8")
    await switch.open("c2", "7")

    assert await switch.press("c1", "7") is True

    assert await flags(switch, ("c1", "7"), ("c1", "8"), ("c2", "7")) == [True, False, False]
    assert switch.ignored == 0


async def test_a_press_for_a_finished_draft_is_ignored_and_counted(
    switch: StopSwitch, caplog: pytest.LogCaptureFixture
) -> None:
    await switch.open("c1", "7")
    await switch.close("c1", "7")
    await switch.open("c1", "8")  # the chat's next answer streams meanwhile

    with caplog.at_level(logging.DEBUG, logger="bots.stop_signal"):
        assert await switch.press("c1", "7") is False

    assert await flags(switch, ("c1", "7"), ("c1", "8")) == [False, False]
    assert switch.ignored == 1
    assert "stop press ignored draft=7" in caplog.text
    assert "c1" not in caplog.text


async def test_a_press_before_its_draft_opens_does_not_stay_armed(switch: StopSwitch) -> None:
    assert await switch.press("c1", "9") is False
    await switch.open("c1", "9")

    assert await switch.stopped("c1", "9") is False
    assert switch.ignored == 1


async def test_a_closed_draft_forgets_its_press(switch: StopSwitch) -> None:
    await switch.open("c1", "7")
    assert await switch.press("c1", "7") is True
    await switch.close("c1", "7")

    assert await switch.stopped("c1", "7") is False


async def test_an_open_draft_expires_on_its_own(switch: StopSwitch) -> None:
    await switch.open("c1", "7")
    await switch.open("c1", "8")
    assert await switch.press("c1", "8") is True
    await asyncio.sleep(0.3)
    await switch.open("c2", "1")  # the memory switch forgets expired drafts when it opens one

    assert await switch.press("c1", "7") is False
    assert await flags(switch, ("c1", "7"), ("c1", "8")) == [False, False]
    assert switch.ignored == 1


async def test_an_unreachable_redis_is_a_store_error() -> None:
    client = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=None
    )
    switch = RedisStopSwitch(client, timeout_s=0.3)
    try:
        for call in (switch.open, switch.press, switch.stopped, switch.close):
            with pytest.raises(StoreUnavailable):
                await call("c1", "7")
    finally:
        await client.aclose()
    assert switch.ignored == 0
