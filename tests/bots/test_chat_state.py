"""The chat gate and outbox contracts over the memory and Redis backends."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from bots.chat_state import ChatSettings, OutboxRecord, Renewal, check_timing
from bots.queue import Entry, QueueSettings
from tests.bots.pipeline_support import (  # noqa: F401
    CHAT,
    TTL,
    MakePipeline,
    Pipeline,
    fixture_make_pipeline,
    fixture_pipeline,
    redis_pipeline,
    sent,
)
from tests.bots.redis_fixtures import fixture_prefix, fixture_redis_client  # noqa: F401

# --- the gate, over both backends --------------------------------------------------------------


async def test_the_first_admission_locks_and_later_ones_park(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2 = await pipeline.entries(1, 2)
    assert await gate.admit(e1, "t1") == "locked"
    assert await gate.admit(e2, "t2") == "parked"
    assert await gate.next_batch(CHAT, "t2") == ()  # not the holder: nothing, and the lock stays
    assert await gate.next_batch(CHAT, "t1") == (e1, e2)
    (e3,) = await pipeline.entries(3)
    assert await gate.admit(e3, "t3") == "parked"
    await gate.complete(CHAT, 2)
    assert await gate.next_batch(CHAT, "t1") == (e3,)
    await gate.complete(CHAT, 3)
    assert await gate.next_batch(CHAT, "t1") == ()  # nothing follows: released
    (e4,) = await pipeline.entries(4)
    assert await gate.admit(e4, "t4") == "locked"


async def test_a_run_stops_at_a_missing_predecessor(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2, e3 = await pipeline.entries(1, 2, 3)
    assert await gate.admit(e2, "t2") == "locked"
    assert await gate.admit(e3, "t3") == "parked"
    assert await gate.next_batch(CHAT, "t2") == ()  # e1 is still on its way; lock released
    assert await gate.admit(e1, "t1") == "locked"
    assert await gate.next_batch(CHAT, "t1") == (e1, e2, e3)


async def test_finished_entries_are_done_and_completion_never_goes_back(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2, e3 = await pipeline.entries(1, 2, 3)
    assert await gate.admit(e1, "t1") == "locked"
    await gate.complete(CHAT, 2)
    await gate.complete(CHAT, 1)
    assert [await gate.admit(e, "t9") for e in (e1, e2)] == ["done", "done"]
    assert await gate.next_batch(CHAT, "t1") == ()
    assert await gate.admit(e3, "t3") == "locked"
    assert await gate.next_batch(CHAT, "t3") == (e3,)


async def test_a_batch_holds_at_most_max_batch_entries(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(chat=ChatSettings(lock_ttl_s=5, heartbeat_s=1, max_batch=2))
    gate = pipeline.gate
    entries = await pipeline.entries(1, 2, 3, 4, 5)
    assert [await gate.admit(e, "t") for e in entries] == ["locked"] + ["parked"] * 4
    batches = []
    while batch := await gate.next_batch(CHAT, "t"):
        batches.append([e.seq for e in batch])
        await gate.complete(CHAT, batch[-1].seq)
    assert batches == [[1, 2], [3, 4], [5]]


async def test_extend_renews_the_lock_and_lists_the_parked_entries(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2 = await pipeline.entries(1, 2)
    await gate.admit(e1, "t1")
    await gate.admit(e2, "t2")
    renewal = await gate.extend(CHAT, "t1", 1)
    assert renewal is not None
    assert not renewal.retaken
    assert sorted(renewal.parked) == sorted([e1.id, e2.id])
    assert await gate.extend(CHAT, "t2", 2) is None
    await gate.complete(CHAT, 1)
    assert await gate.extend(CHAT, "t1", 2) == Renewal((e2.id,))


async def test_an_expired_lock_passes_to_the_next_admission(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2 = await pipeline.entries(1, 2)
    assert await gate.admit(e1, "t1") == "locked"
    await asyncio.sleep(0.15)
    assert await gate.extend(CHAT, "t1", 1) == Renewal((e1.id,))
    await asyncio.sleep(0.15)  # 0.3 s after the admission, 0.15 s after the renewal
    assert await gate.admit(e2, "t2") == "parked"
    await asyncio.sleep(0.3)
    again = Entry(id=e1.id, seq=1, deliveries=2, message=e1.message)  # claimed by a rescuer
    assert await gate.admit(again, "t3") == "locked"
    assert await gate.extend(CHAT, "t1", 1) is None  # the stalled holder has lost it
    assert await gate.next_batch(CHAT, "t3") == (again, e2)


async def test_an_expired_lock_nobody_took_is_taken_again_by_its_holder(
    pipeline: Pipeline,
) -> None:
    gate = pipeline.gate
    e1, e2 = await pipeline.entries(1, 2)
    assert await gate.admit(e1, "t1") == "locked"
    await asyncio.sleep(0.45)  # past the lock's TTL, nobody else came
    renewal = await gate.extend(CHAT, "t1", 1)
    assert renewal == Renewal((e1.id,), retaken=True)
    assert await gate.admit(e2, "t2") == "parked"  # the holder has it again


async def test_an_expired_lock_is_not_taken_again_for_a_finished_batch(
    pipeline: Pipeline,
) -> None:
    gate = pipeline.gate
    (e1,) = await pipeline.entries(1)
    assert await gate.admit(e1, "t1") == "locked"
    await asyncio.sleep(0.45)
    again = Entry(id=e1.id, seq=1, deliveries=2, message=e1.message)
    assert await gate.admit(again, "t2") == "locked"  # a rescuer answers it and lets go
    assert await gate.next_batch(CHAT, "t2") == (again,)
    await gate.complete(CHAT, 1)
    assert await gate.next_batch(CHAT, "t2") == ()
    assert await gate.extend(CHAT, "t1", 1) is None


async def test_only_the_holder_releases_the_lock(pipeline: Pipeline) -> None:
    gate = pipeline.gate
    e1, e2, e3 = await pipeline.entries(1, 2, 3)
    await gate.admit(e1, "t1")
    await gate.release(CHAT, "t2")
    assert await gate.admit(e2, "t2") == "parked"
    await gate.release(CHAT, "t1")
    assert await gate.admit(e3, "t3") == "locked"
    assert await gate.next_batch(CHAT, "t3") == (e1, e2, e3)


async def test_chats_are_independent(pipeline: Pipeline) -> None:
    (a1,) = await pipeline.entries(1, chat="a")
    (b1,) = await pipeline.entries(1, chat="b")
    assert [await pipeline.gate.admit(e, "t") for e in (a1, b1)] == ["locked", "locked"]


def test_a_chat_lock_must_expire_before_entries_are_claimed() -> None:
    check_timing(QueueSettings(min_idle_s=90), ChatSettings(lock_ttl_s=30))
    with pytest.raises(ValueError, match=r"lock_ttl_s=30\.0 must be below .* min_idle_s=20\.0"):
        check_timing(QueueSettings(min_idle_s=20.0), ChatSettings(lock_ttl_s=30.0))


def test_bad_chat_settings_are_refused_with_their_names() -> None:
    with pytest.raises(ValueError, match=r"heartbeat_s=30\.0 lock_ttl_s=30\.0"):
        ChatSettings(heartbeat_s=30.0)
    with pytest.raises(ValueError, match=r"max_batch=0, timeout_s=0"):
        ChatSettings(max_batch=0, timeout_s=0)


# --- the outbox, over both backends -------------------------------------------------------------


async def test_outbox_goes_from_pending_to_sent_and_never_back(pipeline: Pipeline) -> None:
    box = pipeline.outbox
    assert await box.get("tg:1") is None
    await box.mark_pending(["tg:1", "tg:2"], TTL)
    pending = OutboxRecord(status="pending")
    assert await box.get_many(["tg:1", "tg:2", "tg:3"]) == (pending, pending, None)
    await box.mark_sent(["tg:1"], "m-77", TTL)
    await box.mark_pending(["tg:1"], TTL)
    assert await box.get("tg:1") == sent("m-77")
    await box.mark_sent(["tg:2"], None, TTL)
    assert await box.get("tg:2") == sent()
    assert await box.get_many([]) == ()


async def test_outbox_records_expire(pipeline: Pipeline) -> None:
    await pipeline.outbox.mark_pending(["tg:1"], 0.2)
    await pipeline.outbox.mark_sent(["tg:2"], "m-1", 0.2)
    await asyncio.sleep(0.3)
    assert await pipeline.outbox.get_many(["tg:1", "tg:2"]) == (None, None)


# --- Redis only ------------------------------------------------------------------------------


async def test_a_turn_finished_after_redis_lost_its_data_marks_nothing(
    redis_client: Redis, prefix: str
) -> None:
    pipeline = redis_pipeline(redis_client, prefix, QueueSettings(block_ms=50), ChatSettings())
    e1, _ = await pipeline.entries(1, 2)
    await pipeline.gate.admit(e1, "t1")
    await redis_client.delete(f"{prefix}chat:{CHAT}", f"{prefix}chat:{CHAT}:lock")  # data lost
    await pipeline.gate.complete(CHAT, 2)
    assert await redis_client.hget(f"{prefix}chat:{CHAT}", "done") is None
    (e3,) = await pipeline.entries(3)
    assert e3.seq == 1
    assert await pipeline.gate.admit(e3, "t3") == "locked"
