"""`ChatTurns` over the memory and Redis backends, and the order proof (reliability T7)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict

import pytest
from redis.asyncio import Redis

from bots.chat_state import ChatSettings, OutboxRecord, coalesced_text
from bots.errors import StoreUnavailable
from bots.queue import Entry, QueueSettings
from bots.turn_fence import before_final_answer
from tests.bots.pipeline_support import (  # noqa: F401
    CHAT,
    TTL,
    MakePipeline,
    Pipeline,
    Recorder,
    fixture_make_pipeline,
    fixture_pipeline,
    key,
    message,
    redis_pipeline,
    sent,
)
from tests.bots.queue_worker import consume
from tests.bots.redis_fixtures import (  # noqa: F401
    PrivateRedis,
    connect,
    fixture_prefix,
    fixture_private_redis,
    fixture_redis_client,
)
from tests.chaos.fault_proxy import FaultProxy


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What `ChatTurns` logged at WARNING and above."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bots.chat_state" and r.levelno >= logging.WARNING
    ]


# --- ChatTurns, over both backends ---------------------------------------------------------------


async def test_messages_that_arrive_while_busy_are_answered_together(pipeline: Pipeline) -> None:
    release = asyncio.Event()
    texts: list[str] = []

    async def handler(entries: tuple[Entry, ...]) -> str:
        texts.append(coalesced_text(entries))
        if len(texts) == 1:
            await release.wait()
        return f"sent-{len(texts)}"

    turns = pipeline.turns(handler)
    (e1,) = await pipeline.entries(1)
    first = asyncio.create_task(turns.handle(e1, "w1"))
    await asyncio.sleep(0.05)
    e2, e3 = await pipeline.entries(2, 3)
    assert [await turns.handle(e, "w2") for e in (e2, e3)] == [0, 0]
    release.set()
    assert await first == 2
    assert texts == ["hi 1", "hi 2\nhi 3"]
    assert await pipeline.outbox.get_many([key(1), key(2), key(3)]) == (
        sent("sent-1"),
        sent("sent-2"),
        sent("sent-2"),
    )
    stats = await pipeline.queue.stats()
    assert (stats.depth, stats.pending) == (0, 0)


async def test_an_answered_message_is_only_acknowledged(pipeline: Pipeline) -> None:
    (e1,) = await pipeline.entries(1)
    await pipeline.outbox.mark_sent([key(1)], "m-1", TTL)
    recorder = Recorder()
    assert await pipeline.turns(recorder).handle(e1, "w1") == 1
    assert recorder.turns == []
    assert (await pipeline.queue.stats()).depth == 0
    assert await pipeline.outbox.get(key(1)) == sent("m-1")


async def test_a_finished_entry_whose_ack_was_lost_is_only_acknowledged(pipeline: Pipeline) -> None:
    (e1,) = await pipeline.entries(1)
    assert await pipeline.gate.admit(e1, "t1") == "locked"
    await pipeline.gate.complete(CHAT, 1)  # ... and the worker died before its ack
    await asyncio.sleep(0.35)
    (claimed,) = await pipeline.queue.claim("w2")
    recorder = Recorder()
    assert await pipeline.turns(recorder).handle(claimed, "w2") == 0
    assert recorder.turns == []
    assert (await pipeline.queue.stats()).depth == 0


async def test_an_unfinished_earlier_attempt_is_answered_again_and_logged(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    (e1,) = await pipeline.entries(1)
    await pipeline.outbox.mark_pending([key(1)], TTL)  # a worker died while answering
    await asyncio.sleep(0.35)
    (claimed,) = await pipeline.queue.claim("w2")
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="bots.chat_state"):
        assert await pipeline.turns(recorder).handle(claimed, "w2") == 1
    assert recorder.turns == [[1]]
    assert logged(caplog) == [
        "answering again after an unfinished attempt; the earlier answer may have gone out "
        f"entry={e1.id} deliveries=2"
    ]
    assert await pipeline.outbox.get(key(1)) == sent("sent-1")


async def test_an_entry_delivered_too_often_is_dead_lettered_and_the_chat_moves_on(
    make_pipeline: MakePipeline,
) -> None:
    pipeline = make_pipeline(chat=ChatSettings(lock_ttl_s=0.25, heartbeat_s=0.05, max_deliveries=1))
    await pipeline.entries(1)
    await asyncio.sleep(0.35)
    (poison,) = await pipeline.queue.claim("w2")
    (e2,) = await pipeline.entries(2)
    recorder = Recorder()
    turns = pipeline.turns(recorder)
    assert await turns.handle(poison, "w2") == 1
    assert await turns.handle(e2, "w2") == 1
    assert recorder.turns == [[2]]
    [dead] = await pipeline.queue.list_dead()
    assert (dead.entry_id, dead.seq, dead.reason, dead.deliveries) == (
        poison.id,
        1,
        "max_deliveries",
        2,
    )
    stats = await pipeline.queue.stats()
    assert (stats.depth, stats.dead) == (0, 1)


async def test_a_failed_turn_frees_the_chat_and_is_retried_after_min_idle(
    pipeline: Pipeline,
) -> None:
    calls: list[list[int]] = []

    async def flaky(entries: tuple[Entry, ...]) -> str:
        calls.append([entry.seq for entry in entries])
        if len(calls) == 1:
            raise RuntimeError("provider down")
        return "sent"

    turns = pipeline.turns(flaky)
    (e1,) = await pipeline.entries(1)
    with pytest.raises(RuntimeError, match="provider down"):
        await turns.handle(e1, "w1")
    assert await pipeline.outbox.get(key(1)) == OutboxRecord(status="pending")
    await asyncio.sleep(0.35)
    (claimed,) = await pipeline.queue.claim("w2")
    assert await turns.handle(claimed, "w2") == 1
    assert calls == [[1], [1]]
    assert await pipeline.outbox.get(key(1)) == sent("sent")


async def test_a_long_turn_keeps_its_lock_and_its_chats_entries(
    make_pipeline: MakePipeline,
) -> None:
    pipeline = make_pipeline(chat=ChatSettings(lock_ttl_s=0.2, heartbeat_s=0.05))
    started = asyncio.Event()
    recorder = Recorder()

    async def slow(entries: tuple[Entry, ...]) -> str:
        started.set()
        await asyncio.sleep(0.8)
        return await recorder(entries)

    (e1,) = await pipeline.entries(1)
    first = asyncio.create_task(pipeline.turns(slow).handle(e1, "w1"))
    await started.wait()
    (e2,) = await pipeline.entries(2)
    assert await pipeline.turns(slow).handle(e2, "w2") == 0  # the lock outlives its 0.2 s TTL
    await asyncio.sleep(0.5)
    assert await pipeline.queue.claim("w3") == ()  # neither entry looks idle
    assert await first == 2
    assert recorder.turns == [[1], [2]]


# --- Redis only ------------------------------------------------------------------------------


async def test_a_lock_that_vanished_is_taken_again_and_the_turn_finishes(
    redis_client: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ChatSettings(lock_ttl_s=1, heartbeat_s=0.05)
    pipeline = redis_pipeline(redis_client, prefix, QueueSettings(block_ms=50), chat)
    lock = f"{prefix}chat:{CHAT}:lock"
    holders: list[bytes | str | None] = []

    async def handler(entries: tuple[Entry, ...]) -> str:
        await redis_client.delete(lock)  # as a Redis restart without that key would
        await asyncio.sleep(0.2)
        holders.append(await redis_client.get(lock))
        return "sent"

    (e1,) = await pipeline.entries(1)
    with caplog.at_level(logging.WARNING, logger="bots.chat_state"):
        assert await pipeline.turns(handler).handle(e1, "w1") == 1
    assert logged(caplog) == [
        f"chat lock expired while answering entry={e1.id}: nobody had taken it, taken again"
    ]
    assert holders[0] is not None  # the worker held the chat again before it answered
    assert await pipeline.outbox.get(key(1)) == sent("sent")
    assert (await pipeline.queue.stats()).pending == 0


@pytest.mark.parametrize(
    "found_by",
    ["heartbeat", "fence"],
    ids=["found by the heartbeat", "found at the fence before the final answer"],
)
async def test_a_turn_whose_chat_another_worker_took_stops_without_answering(
    redis_client: Redis, prefix: str, caplog: pytest.LogCaptureFixture, found_by: str
) -> None:
    if found_by == "heartbeat":
        chat = ChatSettings(lock_ttl_s=1, heartbeat_s=0.05)
    else:
        chat = ChatSettings(lock_ttl_s=30, heartbeat_s=10)  # no heartbeat during the turn
    pipeline = redis_pipeline(redis_client, prefix, QueueSettings(block_ms=50), chat)
    delivered: list[str] = []

    async def handler(entries: tuple[Entry, ...]) -> str:
        await redis_client.set(f"{prefix}chat:{CHAT}:lock", "another-worker", px=5000)
        if found_by == "heartbeat":
            await asyncio.sleep(2)  # streaming the answer; the heartbeat finds the lock gone
        await before_final_answer()  # as the channels do
        delivered.append("final message")
        return "sent"

    (e1,) = await pipeline.entries(1)
    with caplog.at_level(logging.WARNING, logger="bots.chat_state"):
        async with asyncio.timeout(1):
            assert await pipeline.turns(handler).handle(e1, "w1") == 0
    assert delivered == []
    assert logged(caplog) == [
        f"chat lock lost while answering entry={e1.id} deliveries=1: turn stopped, "
        "left to the lock's new holder"
    ]
    assert await pipeline.outbox.get(key(1)) == OutboxRecord(status="pending")
    assert (await pipeline.queue.stats()).pending == 1  # acked by the holder once it answers
    assert await redis_client.get(f"{prefix}chat:{CHAT}:lock") == b"another-worker"


async def test_the_final_answer_waits_for_an_unreachable_store_to_confirm_the_lock(
    private_redis: PrivateRedis,
) -> None:
    chat = ChatSettings(lock_ttl_s=30, heartbeat_s=10, record_retry_s=5)
    async with FaultProxy(private_redis.port) as proxy:
        client = await connect(proxy.url())
        pipeline = redis_pipeline(client, "fence:", QueueSettings(block_ms=50), chat)
        waited: list[float] = []

        async def handler(entries: tuple[Entry, ...]) -> str:
            proxy.reset_all()  # Redis drops away for 0.6 s just before the answer is final
            asyncio.get_running_loop().call_later(0.6, proxy.passthrough)
            began = time.monotonic()
            await before_final_answer()
            waited.append(time.monotonic() - began)
            return "sent"

        try:
            (e1,) = await pipeline.entries(1)
            assert await pipeline.turns(handler).handle(e1, "w1") == 1
            assert await pipeline.outbox.get(key(1)) == sent("sent")
        finally:
            await client.aclose()
    assert waited[0] >= 0.55  # the answer went out only once the lock was confirmed


async def test_redis_lost_mid_turn_fails_the_turn_and_logs(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connect(private_redis.url)
    queue = QueueSettings(block_ms=50, timeout_s=0.3)
    chat = ChatSettings(lock_ttl_s=1, heartbeat_s=0.05, timeout_s=0.3)
    pipeline = redis_pipeline(client, "t:{p}:", queue, chat)

    async def handler(entries: tuple[Entry, ...]) -> str:
        await private_redis.kill()
        await asyncio.sleep(0.5)
        return "sent"

    try:
        (e1,) = await pipeline.entries(1)
        with (
            caplog.at_level(logging.WARNING, logger="bots.chat_state"),
            pytest.raises(StoreUnavailable, match="outbox mark sent failed"),
        ):
            await pipeline.turns(handler).handle(e1, "w1")
    finally:
        await client.aclose()
    kinds = {line.split(":")[0].split(", retrying")[0] for line in logged(caplog)}
    assert kinds == {
        f"heartbeat failed entry={e1.id}",
        "outbox mark sent failed",  # retried for about 1.5 s before the turn fails
        "chat lock release failed",
    }


# --- order (reliability T7) -------------------------------------------------------------------


CHATS, PER_CHAT, WORKERS = 50, 40, 3


class OrderLog:
    """A turn handler that records each chat's sequence numbers and works 1-30 ms per turn."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.processed: dict[str, list[int]] = defaultdict(list)
        self.turns: list[int] = []
        self.done = asyncio.Event()

    async def __call__(self, entries: tuple[Entry, ...]) -> None:
        self.turns.append(len(entries))
        self.processed[entries[0].message.chat_id].extend(entry.seq for entry in entries)
        if sum(self.turns) == CHATS * PER_CHAT:
            self.done.set()
        await asyncio.sleep(self.rng.uniform(0.001, 0.030))


async def run_order(pipelines: list[Pipeline], log: OrderLog) -> None:
    """Workers consume while the messages are enqueued, round by round, until all are seen."""
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        for i, p in enumerate(pipelines):
            worker = consume(p.queue, p.turns(log), f"w{i}", claim_interval_s=1, stop=stop)
            tasks.create_task(worker)
        for n in range(1, PER_CHAT + 1):
            for c in log.rng.sample(range(CHATS), CHATS):
                assert await pipelines[0].queue.enqueue(message(f"chat{c}", n), TTL)
            await asyncio.sleep(log.rng.uniform(0, 0.02))
        async with asyncio.timeout(25):
            await log.done.wait()
        stop.set()


async def test_two_thousand_messages_in_fifty_chats_keep_their_order(
    make_pipeline: MakePipeline,
) -> None:
    queue = QueueSettings(block_ms=50, min_idle_s=30)
    chat = ChatSettings(lock_ttl_s=10, heartbeat_s=2)
    redis = make_pipeline.backend == "redis"
    clients = [await connect() for _ in range(WORKERS)] if redis else []  # one each
    pipelines = [make_pipeline(queue, chat, client) for client in clients]
    pipelines = pipelines or [make_pipeline(queue, chat)] * WORKERS  # memory: one process
    log = OrderLog(random.Random(7))
    started = time.monotonic()
    try:
        await run_order(pipelines, log)
        elapsed = time.monotonic() - started
        stats = await pipelines[0].queue.stats()
    finally:
        for client in clients:
            await client.aclose()
    assert log.processed == {f"chat{c}": list(range(1, PER_CHAT + 1)) for c in range(CHATS)}
    assert (stats.depth, stats.pending) == (0, 0)
    logging.getLogger(__name__).info(
        "order run backend=%s messages=%d turns=%d coalesced=%d largest=%d elapsed=%.1fs",
        make_pipeline.backend,
        CHATS * PER_CHAT,
        len(log.turns),
        sum(1 for n in log.turns if n > 1),
        max(log.turns),
        elapsed,
    )
