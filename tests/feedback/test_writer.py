"""The batched writer: buffering, batching, shutdown, a full buffer, and database outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import select

from feedback.errors import FeedbackError, StoreError
from feedback.review import open_turn
from feedback.schema import turns
from feedback.store import FeedbackStore, Forgotten
from feedback.types import EventKind
from feedback.writer import FeedbackLog
from tests.feedback.conftest import Clock, MakeSettings, PgDatabase, settings_for
from tests.feedback.records import RAW_USER, T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(30)


async def stored_ids(store: FeedbackStore) -> list[str]:
    """The turn ids in the database, sorted."""
    async with store.connect() as conn:
        return list((await conn.scalars(select(turns.c.turn_id).order_by(turns.c.turn_id))).all())


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> None:
    """Poll the database until `check()` is true (there is no event to wait on across it)."""
    async with asyncio.timeout(within_s):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def ids(n: int, prefix: str = "t") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


async def test_recording_does_not_write_until_the_writer_runs(
    store: FeedbackStore, make_settings: MakeSettings
) -> None:
    log = FeedbackLog(store, make_settings())
    log.record_turn(make_turn("t1"))
    log.record_event(make_event(EventKind.STOP_PRESSED, turn_id="t1"))
    assert (log.pending, await stored_ids(store)) == (2, [])

    log.start()
    log.start()  # idempotent
    await log.flush()
    assert (log.pending, await stored_ids(store)) == (0, ["t1"])
    await log.flush()  # nothing pending: returns at once
    await log.aclose()
    await log.aclose()


async def test_flush_needs_a_running_writer_and_close_counts_what_it_never_wrote(
    store: FeedbackStore, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    log = FeedbackLog(store, make_settings())
    log.record_turn(make_turn("t1"))
    with pytest.raises(FeedbackError, match="writer is not running"):
        await log.flush()
    with caplog.at_level(logging.ERROR, logger="feedback.writer"):
        await log.aclose()
    assert (log.dropped, log.pending) == (1, 0)
    assert "writer stopped with records=1 unwritten" in caplog.text
    await log.flush()  # nothing is waiting any more
    assert await stored_ids(store) == []


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    store: FeedbackStore, make_settings: MakeSettings
) -> None:
    async with FeedbackLog(
        store, make_settings(feedback_batch_size=5, feedback_flush_interval_s=60.0)
    ) as log:
        await asyncio.sleep(0.05)  # the writer is asleep for its interval
        for turn_id in ids(5):
            log.record_turn(make_turn(turn_id, when=at(1)))

        async def written() -> bool:
            return await stored_ids(store) == ids(5)

        await eventually(written)


async def test_a_partial_batch_is_written_at_the_interval(
    store: FeedbackStore, make_settings: MakeSettings
) -> None:
    async with FeedbackLog(
        store, make_settings(feedback_batch_size=100, feedback_flush_interval_s=0.05)
    ) as log:
        for turn_id in ids(3):
            log.record_turn(make_turn(turn_id))

        async def written() -> bool:
            return await stored_ids(store) == ids(3)

        await eventually(written)


async def test_closing_writes_what_is_buffered_and_refuses_more(
    store: FeedbackStore, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    log = FeedbackLog(store, make_settings(feedback_batch_size=3, feedback_flush_interval_s=60.0))
    log.start()
    for turn_id in ids(7):
        log.record_turn(make_turn(turn_id))
    await log.aclose()
    assert await stored_ids(store) == ids(7)

    with caplog.at_level(logging.ERROR, logger="feedback.writer"):
        log.record_turn(make_turn("late"))
    assert (log.dropped, log.pending) == (1, 0)
    assert "dropping new records" in caplog.text


async def test_a_full_buffer_drops_the_newest_records_and_says_so(
    store: FeedbackStore, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    log = FeedbackLog(store, make_settings(feedback_buffer_limit=3))
    with caplog.at_level(logging.ERROR, logger="feedback.writer"):
        for turn_id in ids(5):
            log.record_turn(make_turn(turn_id))
        assert (log.pending, log.dropped) == (3, 2)
        assert caplog.text.count("buffer full (limit=3)") == 1

        log.start()
        await log.flush()
        await log.aclose()
    assert await stored_ids(store) == ids(3)
    assert "dropped records=2 while the buffer was full" in caplog.text


async def test_a_record_the_database_refuses_is_dropped_and_the_rest_written(
    store: FeedbackStore, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    poison = replace(make_turn("bad"), channel=None)  # type: ignore[arg-type]  # a caller's bug
    async with FeedbackLog(store, make_settings()) as log:
        with caplog.at_level(logging.ERROR, logger="feedback.writer"):
            log.record_turn(make_turn("a"))
            log.record_turn(poison)
            log.record_event(make_event(EventKind.RATING, turn_id="a", rating="down"))
            log.record_turn(make_turn("b"))
            log.record_event(replace(make_event(EventKind.RATING), event_id="e1", detail=None))  # type: ignore[arg-type]  # a caller's bug
            await log.flush()
    assert await stored_ids(store) == ["a", "b"]
    assert log.dropped == 2
    assert "refused by the database, dropped: turn=bad: feedback write failed:" in caplog.text
    assert "refused by the database, dropped: event=e1 kind=rating: " in caplog.text
    assert caplog.text.upper().replace("-", " ").count("NOT NULL") == 2
    assert store.hash_id(RAW_USER) not in caplog.text  # no statement parameters in the logs


async def test_forget_through_the_log_writes_buffered_records_first(
    store: FeedbackStore, make_settings: MakeSettings
) -> None:
    async with FeedbackLog(store, make_settings(feedback_flush_interval_s=60.0)) as log:
        log.record_turn(make_turn("t1"))
        log.record_event(make_event(EventKind.RATING, turn_id="t1", rating="up"))
        assert await log.forget(RAW_USER) == Forgotten(turns=1, attempts=1, events=1)
    assert await stored_ids(store) == []


async def test_the_writer_purges_old_text_when_it_starts(make_settings: MakeSettings) -> None:
    clock = Clock(T0)
    settings = make_settings(text_retention_days=1)
    store = await FeedbackStore.open(settings, clock=clock)
    try:
        await store.write([make_turn("t1")])
        clock.now = T0 + timedelta(days=2)
        async with FeedbackLog(store, settings):

            async def purged() -> bool:
                return (await open_turn(store, "t1")).turn.message_text is None

            await eventually(purged)
    finally:
        await store.aclose()


async def test_database_outage_loses_nothing_while_the_buffer_has_room(
    pg_database: PgDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(pg_database.url, feedback_buffer_limit=30, feedback_batch_size=8)
    store = await FeedbackStore.open(settings, clock=Clock(T0))
    log = FeedbackLog(store, settings)
    log.start()
    try:
        log.record_turn(make_turn("before"))
        await log.flush()
        with caplog.at_level(logging.WARNING, logger="feedback.writer"):
            await pg_database.refuse_connections()
            for turn_id in ids(35, "down-"):
                log.record_turn(make_turn(turn_id))
            await asyncio.sleep(0.5)
            assert (log.pending, log.dropped) == (30, 5)

            await pg_database.accept_connections()
            async with asyncio.timeout(10):
                await log.flush()
        assert await stored_ids(store) == ["before", *ids(30, "down-")]
        assert "feedback write failed (try 1, batch=8)" in caplog.text
        assert "feedback database back after failures=" in caplog.text
        assert "dropped records=5 while the buffer was full" in caplog.text
    finally:
        await log.aclose()
        await store.aclose()


async def test_a_stalled_write_times_out_and_is_retried(pg_database: PgDatabase) -> None:
    settings = settings_for(pg_database.url, feedback_write_timeout_s=0.3)
    store = await FeedbackStore.open(settings, clock=Clock(T0))
    blocker = await asyncpg.connect(pg_database.url.replace("+asyncpg", ""))
    try:
        async with FeedbackLog(store, settings) as log:
            stall = blocker.transaction()
            await stall.start()
            await blocker.execute("LOCK TABLE turns IN ACCESS EXCLUSIVE MODE")
            log.record_turn(make_turn("t1"))
            await asyncio.sleep(0.8)  # at least two writes time out behind the lock
            assert log.pending == 1
            await stall.rollback()
            async with asyncio.timeout(10):
                await log.flush()
        assert await stored_ids(store) == ["t1"]
    finally:
        await blocker.close()
        await store.aclose()


async def test_shutdown_gives_up_after_its_timeout_and_counts_the_loss(
    pg_database: PgDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(pg_database.url, feedback_shutdown_timeout_s=0.3)
    store = await FeedbackStore.open(settings)
    await pg_database.refuse_connections()
    log = FeedbackLog(store, settings)
    try:
        with caplog.at_level(logging.WARNING):
            log.start()
            for turn_id in ids(4):
                log.record_turn(make_turn(turn_id))
            waiting = asyncio.create_task(log.flush())
            await log.aclose()
            await waiting
        assert (log.dropped, log.pending) == (4, 0)
        assert "feedback text purge failed" in caplog.text
        assert "writer stopped with records=4 unwritten" in caplog.text
    finally:
        await pg_database.accept_connections()
        await store.aclose()


async def test_forget_while_the_database_is_down_fails_in_time(pg_database: PgDatabase) -> None:
    settings = settings_for(pg_database.url, feedback_query_timeout_s=0.3)
    store = await FeedbackStore.open(settings_for(pg_database.url), clock=Clock(T0))
    try:
        async with FeedbackLog(store, settings) as log:
            await pg_database.refuse_connections()
            log.record_turn(make_turn("t1"))
            with pytest.raises(StoreError, match=r"forget took longer than \S+=0\.3 s"):
                await log.forget(RAW_USER)
            await pg_database.accept_connections()
            await log.flush()
        assert await stored_ids(store) == ["t1"]
    finally:
        await store.aclose()
