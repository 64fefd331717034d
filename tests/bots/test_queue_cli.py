"""`tierbot queue`: an operator lists, replays and discards dead letters on the shared Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bots.__main__ import main
from bots.constants import PIPELINE_PREFIX
from bots.queue_redis import RedisQueue
from bots.types import InboundMessage

MESSAGE = InboundMessage(
    channel="telegram", dedupe_key="tg:1", chat_id="c1", user_id="u1", kind="text", text="hi"
)


@pytest.fixture
async def queue(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RedisQueue]:
    namespace = f"test-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("TIERBOT_REDIS_KEY_PREFIX", namespace)
    redis = Redis(host="127.0.0.1", port=6379)
    try:
        await redis.ping()
    except OSError as exc:  # pragma: no cover - the message says how to start Redis
        pytest.fail(f"Redis is not reachable on 127.0.0.1:6379 ({exc}); start redis-server")
    yield RedisQueue(redis, prefix=namespace + PIPELINE_PREFIX)
    keys = [key async for key in redis.scan_iter(match=f"{namespace}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_dead_letters_are_listed_replayed_and_discarded(
    queue: RedisQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await queue.enqueue(MESSAGE, 60)
    (entry,) = await queue.read("w1")
    await queue.dead_letter(entry, "max_deliveries")
    await queue.ack([entry.id])

    assert await _main_in_thread(["queue", "dead"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    dead_id = listed[0].split()[0]
    assert "telegram  text" in listed[0]
    assert "reason=max_deliveries" in listed[0]

    assert await _main_in_thread(["queue", "replay", dead_id]) == 0
    assert capsys.readouterr().out.startswith("queued again as ")
    (again,) = await queue.read("w1")
    assert again.message == MESSAGE

    assert await _main_in_thread(["queue", "discard", "no-such-id"]) == 1
    assert await _main_in_thread(["queue", "stats"]) == 0
    assert "pending 1" in capsys.readouterr().out


def test_without_redis_the_queue_commands_say_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["queue", "dead"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err


async def _main_in_thread(argv: list[str]) -> int:
    """main() runs its own event loop, so it runs in a worker thread here."""
    return await asyncio.to_thread(main, argv)
