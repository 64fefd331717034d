"""The `Queue` contract over the memory and Redis implementations, then Redis-only behaviour."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from bots.errors import DeadLetterNotFound, QueueUnavailable
from bots.queue import (
    TELEGRAM_DEDUPE_TTL_S,
    WHATSAPP_DEDUPE_TTL_S,
    DeadEntry,
    Entry,
    Queue,
    QueueSettings,
    QueueStats,
    dedupe_ttl_s,
)
from bots.queue_memory import MemoryQueue
from bots.queue_redis import RedisQueue
from bots.queue_redis_enqueue import MAX_BATCH
from tests.bots.pipeline_support import TTL, message
from tests.bots.redis_fixtures import (  # noqa: F401
    Blackhole,
    PrivateRedis,
    connect,
    fixture_prefix,
    fixture_private_redis,
    fixture_redis_client,
    free_port,
)

MakeQueue = Callable[[QueueSettings], Queue]


@pytest.fixture(params=["memory", "redis"])
def make_queue(request: pytest.FixtureRequest) -> MakeQueue:
    """Build queues of one implementation (Redis: sharing the test's prefix)."""
    if request.param == "memory":
        return lambda settings: MemoryQueue(settings)
    client: Redis = request.getfixturevalue("redis_client")
    name: str = request.getfixturevalue("prefix")
    return lambda settings: RedisQueue(client, settings, prefix=name)


@pytest.fixture
def queue(make_queue: MakeQueue) -> Queue:
    return make_queue(QueueSettings(block_ms=50, min_idle_s=0.3))


# --- the contract, over both implementations ----------------------------------------------


async def test_enqueue_once_then_refuse_the_duplicate(queue: Queue) -> None:
    first = message()
    assert await queue.enqueue(first, TTL) is True
    assert await queue.enqueue(message(text="retried"), TTL) is False
    [entry] = await queue.read("w1")
    assert (entry.seq, entry.deliveries, entry.message) == (1, 1, first)
    assert await queue.read("w1") == ()
    stats = await queue.stats()
    assert (stats.depth, stats.pending, stats.dead, stats.dropped_pending) == (1, 1, 0, 0)


async def test_concurrent_duplicates_make_one_entry(queue: Queue) -> None:
    results = await asyncio.gather(*(queue.enqueue(message(), TTL) for _ in range(3)))
    assert sorted(results) == [False, False, True]
    assert [e.message.dedupe_key for e in await queue.read("w1", count=10)] == ["tg:c1:1"]


async def test_sequence_numbers_count_per_chat_in_enqueue_order(queue: Queue) -> None:
    for chat, n in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)]:
        assert await queue.enqueue(message(chat, n), TTL)
    entries = await queue.read("w1", count=3) + await queue.read("w2", count=10)
    assert [(e.message.chat_id, e.seq) for e in entries] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("a", 3),
        ("b", 2),
    ]
    assert len({e.id for e in entries}) == 5


async def test_a_dedupe_key_is_forgotten_after_its_ttl(queue: Queue) -> None:
    assert await queue.enqueue(message(), 0.2)
    assert not await queue.enqueue(message(), 0.2)
    await asyncio.sleep(0.3)
    assert await queue.enqueue(message(), 0.2)
    assert [e.seq for e in await queue.read("w1")] == [1, 2]


async def test_read_waits_up_to_block_ms(make_queue: MakeQueue) -> None:
    queue = make_queue(QueueSettings(block_ms=200))
    started = time.monotonic()
    assert await queue.read("w1") == ()
    assert 0.15 <= time.monotonic() - started < 0.6


async def test_a_waiting_read_wakes_up_for_a_new_entry(make_queue: MakeQueue) -> None:
    queue = make_queue(QueueSettings(block_ms=3000))
    reader = asyncio.create_task(queue.read("w1"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await queue.enqueue(message(), TTL)
    [entry] = await reader
    assert entry.message == message()
    assert time.monotonic() - started < 1.0


async def test_ack_drops_entries_and_ignores_unknown_ids(queue: Queue) -> None:
    for n in (1, 2):
        await queue.enqueue(message(n=n), TTL)
    first, second = await queue.read("w1")
    await queue.ack([first.id, "1-1"])
    await queue.ack([])
    stats = await queue.stats()
    assert (stats.depth, stats.pending) == (1, 1)
    await queue.ack([second.id])
    assert await queue.stats() == QueueStats(
        depth=0, pending=0, oldest_pending_age_s=None, dead=0, dropped_pending=0
    )
    await asyncio.sleep(0.35)
    assert await queue.claim("w2") == ()


async def test_claim_takes_idle_entries_and_counts_deliveries(queue: Queue) -> None:
    await queue.enqueue(message(), TTL)
    [entry] = await queue.read("w1")
    assert await queue.claim("w2") == ()
    await asyncio.sleep(0.35)
    [claimed] = await queue.claim("w2")
    assert claimed == Entry(id=entry.id, seq=1, deliveries=2, message=entry.message)
    assert await queue.claim("w3") == ()
    await asyncio.sleep(0.35)
    assert [e.deliveries for e in await queue.claim("w3")] == [3]


async def test_claim_takes_oldest_first_up_to_claim_count(make_queue: MakeQueue) -> None:
    queue = make_queue(QueueSettings(block_ms=50, min_idle_s=0.1, claim_count=2))
    for n in (1, 2, 3):
        await queue.enqueue(message(n=n), TTL)
    await queue.read("w1")
    await asyncio.sleep(0.15)
    assert [e.seq for e in await queue.claim("w2")] == [1, 2]
    assert [e.seq for e in await queue.claim("w2")] == [3]


async def test_heartbeat_keeps_entries_from_being_claimed(make_queue: MakeQueue) -> None:
    queue = make_queue(QueueSettings(block_ms=50, min_idle_s=0.4))
    await queue.enqueue(message(), TTL)
    [entry] = await queue.read("w1")
    await asyncio.sleep(0.25)
    await queue.heartbeat("w1", [entry.id, "1-1"])
    await queue.heartbeat("w1", [])
    await asyncio.sleep(0.25)
    assert await queue.claim("w2") == ()
    await asyncio.sleep(0.25)
    assert [e.deliveries for e in await queue.claim("w2")] == [2]


async def test_dead_letter_then_replay_bypasses_dedupe(queue: Queue) -> None:
    await queue.enqueue(message(), TTL)
    await queue.enqueue(message(n=2), TTL)
    first, _ = await queue.read("w1")
    await queue.dead_letter(first, "max_deliveries")
    [dead] = await queue.list_dead()
    assert dead == DeadEntry(
        id=dead.id,
        entry_id=first.id,
        seq=1,
        reason="max_deliveries",
        deliveries=1,
        message=first.message,
    )
    stats = await queue.stats()
    assert (stats.depth, stats.pending, stats.dead) == (1, 1, 1)
    new_id = await queue.replay(dead.id)
    assert await queue.list_dead() == ()
    [again] = await queue.read("w1")
    assert again == Entry(id=new_id, seq=3, deliveries=1, message=first.message)
    with pytest.raises(DeadLetterNotFound):
        await queue.replay(dead.id)


async def test_list_dead_is_oldest_first_and_discard_removes(queue: Queue) -> None:
    for n in (1, 2, 3):
        await queue.enqueue(message(n=n), TTL)
    for entry in await queue.read("w1"):
        await queue.dead_letter(entry, f"reason {entry.seq}")
    assert [d.reason for d in await queue.list_dead(count=2)] == ["reason 1", "reason 2"]
    oldest = (await queue.list_dead())[0]
    assert await queue.discard(oldest.id) is True
    assert await queue.discard(oldest.id) is False
    assert [d.seq for d in await queue.list_dead()] == [2, 3]
    assert (await queue.stats()).dead == 2


async def test_stats_age_the_oldest_pending_entry(queue: Queue) -> None:
    await queue.enqueue(message(), TTL)
    assert (await queue.stats()).oldest_pending_age_s is None  # not handed out yet
    await queue.read("w1")
    await asyncio.sleep(0.2)
    await queue.enqueue(message(n=2), TTL)
    await queue.read("w1")
    stats = await queue.stats()
    assert stats.oldest_pending_age_s is not None
    assert 0.15 <= stats.oldest_pending_age_s < 1.0
    assert (stats.depth, stats.pending, queue.dropped_pending) == (2, 2, 0)


# --- settings and constants -------------------------------------------------------------------


def test_bad_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match=r"min_idle_s=0, block_ms=-1"):
        QueueSettings(min_idle_s=0, block_ms=-1)


def test_dedupe_ttls_follow_the_platforms_retry_windows() -> None:
    assert (dedupe_ttl_s("telegram"), dedupe_ttl_s("whatsapp")) == (
        TELEGRAM_DEDUPE_TTL_S,
        WHATSAPP_DEDUPE_TTL_S,
    )
    assert (TELEGRAM_DEDUPE_TTL_S, WHATSAPP_DEDUPE_TTL_S) == (48 * 3600, 8 * 86400)


# --- Redis only ------------------------------------------------------------------------------


async def test_keys_carry_the_prefix_and_the_dedupe_ttl(redis_client: Redis, prefix: str) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    await queue.enqueue(message(), 48 * 3600)
    [entry] = await queue.read("w1")
    assert await redis_client.get(f"{prefix}dedupe:tg:c1:1") == entry.id.encode()
    assert await redis_client.pttl(f"{prefix}dedupe:tg:c1:1") > 48 * 3600 * 1000 - 5000
    assert await redis_client.hget(f"{prefix}chat:c1", "next") == b"1"
    assert 0 < await redis_client.ttl(f"{prefix}chat:c1") <= 30 * 86400
    await queue.ack([entry.id])
    assert await redis_client.xlen(f"{prefix}stream") == 0


async def test_lost_pending_entries_are_counted_and_logged(
    redis_client: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50, min_idle_s=0.1), prefix=prefix)
    for n in (1, 2, 3):
        await queue.enqueue(message(n=n), TTL)
    entries = await queue.read("w1")
    await redis_client.xtrim(
        f"{prefix}stream", maxlen=1, approximate=False
    )  # the MAXLEN trap of reliability §1.2
    await asyncio.sleep(0.15)
    with caplog.at_level(logging.ERROR, logger="bots.queue_redis"):
        assert [e.seq for e in await queue.claim("w2")] == [3]
    assert queue.dropped_pending == 2
    assert (await queue.stats()).dropped_pending == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"queue lost 2 pending entries before their ack (trimmed or deleted) "
        f"stream={prefix}stream ids={entries[0].id},{entries[1].id}"
    ]


async def test_a_lost_consumer_group_is_recreated(redis_client: Redis, prefix: str) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50, min_idle_s=0.1), prefix=prefix)
    assert await queue.claim("w1") == ()
    assert await queue.read("w1") == ()
    await redis_client.delete(f"{prefix}stream")  # Redis restarted without its data
    await queue.heartbeat("w1", ["1-0"])
    await redis_client.delete(f"{prefix}stream")
    await queue.enqueue(message(), TTL)
    assert [e.seq for e in await queue.read("w1")] == [1]


async def test_a_wrong_key_type_is_reported_not_hidden(redis_client: Redis, prefix: str) -> None:
    await redis_client.set(f"{prefix}stream", "not a stream")
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    with pytest.raises(QueueUnavailable, match="WRONGTYPE"):
        await queue.read("w1")


async def test_a_replay_that_lost_the_race_is_not_found(redis_client: Redis, prefix: str) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    await queue.enqueue(message(), TTL)
    [entry] = await queue.read("w1")
    await queue.dead_letter(entry, "poison")
    [dead] = await queue.list_dead()
    await asyncio.gather(*(redis_client.ping() for _ in range(4)))  # four open connections
    racing = [queue.replay(dead.id) for _ in range(4)]
    results = await asyncio.gather(*racing, return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["DeadLetterNotFound"] * 3 + ["str"]


@pytest.mark.parametrize("from_url", [True, False], ids=["from_url", "constructor"])
async def test_refused_connections_raise_queue_unavailable_within_one_second(
    from_url: bool,
) -> None:
    port = free_port()
    client = (  # the two build different retry policies; neither may delay the 503
        Redis.from_url(f"redis://127.0.0.1:{port}/0")
        if from_url
        else Redis(host="127.0.0.1", port=port)
    )
    try:
        started = time.monotonic()
        with pytest.raises(QueueUnavailable, match=r"queue enqueue stream=.* failed"):
            await RedisQueue(client).enqueue(message(), TTL)
        assert time.monotonic() - started < 1.0
    finally:
        await client.aclose()


async def test_every_queue_call_reports_an_unreachable_redis() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    queue = RedisQueue(client, QueueSettings(block_ms=50, timeout_s=0.5))
    entry = Entry(id="1-0", seq=1, deliveries=1, message=message())
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: queue.read("w1"),
        lambda: queue.claim("w1"),
        lambda: queue.heartbeat("w1", ["1-0"]),
        lambda: queue.ack(["1-0"]),
        lambda: queue.dead_letter(entry, "poison"),
        queue.stats,
        queue.list_dead,
        lambda: queue.replay("1-0"),
        lambda: queue.discard("1-0"),
    ]
    try:
        for call in calls:
            with pytest.raises(QueueUnavailable):
                await call()
    finally:
        await client.aclose()


async def test_a_hung_redis_raises_queue_unavailable_within_one_second() -> None:
    async with Blackhole() as hole:
        client = Redis(host="127.0.0.1", port=hole.port)
        queue = RedisQueue(client)
        try:
            started = time.monotonic()
            with pytest.raises(QueueUnavailable, match="TimeoutError"):
                await queue.enqueue(message(), TTL)
            assert 0.7 <= time.monotonic() - started < 1.0
        finally:
            await client.aclose()


# --- Redis: concurrent enqueues share script calls (bots/queue_redis_enqueue.py) -------------


async def test_concurrent_enqueues_share_script_calls_in_arrival_order(
    private_redis: PrivateRedis,
) -> None:
    client = await connect(private_redis.url)
    queue = RedisQueue(client, QueueSettings(block_ms=50))
    chats = ("a", "b", "c")
    try:
        assert await queue.enqueue(message("warm-up"), TTL)  # loads the script
        await client.config_resetstat()
        results = await asyncio.gather(
            *(queue.enqueue(message(chats[n % 3], n // 3 + 1), TTL) for n in range(250))
        )
        calls = (await client.info("commandstats"))["cmdstat_evalsha"]["calls"]
        entries = (await queue.read("w1", count=300))[1:]
    finally:
        await client.aclose()

    assert results == [True] * 250
    assert calls == -(-250 // MAX_BATCH)  # 100 + 100 + 50
    assert [(e.message.chat_id, e.seq, e.message.dedupe_key) for e in entries] == [
        (chats[n % 3], n // 3 + 1, f"tg:{chats[n % 3]}:{n // 3 + 1}") for n in range(250)
    ]


async def test_a_message_the_script_cannot_store_fails_alone(
    redis_client: Redis, prefix: str
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    await redis_client.set(f"{prefix}chat:bad", "not a hash")

    results = await asyncio.gather(
        *(queue.enqueue(message(chat), TTL) for chat in ("a", "bad", "b")), return_exceptions=True
    )

    assert [type(r).__name__ for r in results] == ["bool", "QueueUnavailable", "bool"]
    assert "ResponseError: WRONGTYPE" in str(results[1])
    assert [e.message.chat_id for e in await queue.read("w1")] == ["a", "b"]
    await redis_client.delete(f"{prefix}chat:bad")
    assert await queue.enqueue(message("bad"), TTL)  # its failure was not remembered


async def test_a_failed_append_leaves_no_gap_in_the_chat_sequence(
    redis_client: Redis, prefix: str
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    assert await queue.enqueue(message(n=1), TTL)
    await redis_client.rename(f"{prefix}stream", f"{prefix}saved")
    await redis_client.set(f"{prefix}stream", "not a stream")

    with pytest.raises(QueueUnavailable, match="WRONGTYPE"):
        await queue.enqueue(message(n=2), TTL)

    await redis_client.delete(f"{prefix}stream")
    await redis_client.rename(f"{prefix}saved", f"{prefix}stream")
    assert await queue.enqueue(message(n=2), TTL)
    assert [(e.seq, e.message.dedupe_key) for e in await queue.read("w1")] == [
        (1, "tg:c1:1"),
        (2, "tg:c1:2"),
    ]


async def test_enqueues_waiting_behind_a_hung_call_fail_within_their_own_second() -> None:
    async def timed(hung: RedisQueue, n: int) -> float:
        started = time.monotonic()
        with pytest.raises(QueueUnavailable, match="TimeoutError"):
            await hung.enqueue(message(n=n), TTL)
        return time.monotonic() - started

    async def later_wave(hung: RedisQueue) -> list[float]:
        await asyncio.sleep(0.3)  # while the first wave's script call hangs
        return await asyncio.gather(*(timed(hung, n) for n in range(10, 20)))

    async with Blackhole() as hole:
        client = Redis(host="127.0.0.1", port=hole.port)
        hung = RedisQueue(client)
        try:
            first, second = await asyncio.gather(
                asyncio.gather(*(timed(hung, n) for n in range(10))), later_wave(hung)
            )
        finally:
            await client.aclose()
    assert [0.7 <= s < 1.0 for s in [*first, *second]] == [True] * 20
