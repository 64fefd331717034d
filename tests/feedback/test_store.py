"""Contract suite of the store, run on SQLite and PostgreSQL: writes, ids, forget, retention."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import MetaData, String, Text, func, select, text
from sqlalchemy.engine import Connection

from feedback.errors import StoreError
from feedback.ids import IdHasher
from feedback.report import build_report
from feedback.review import open_turn
from feedback.schema import attempts, events, turn_texts, turns
from feedback.store import FeedbackStore, Forgotten
from feedback.types import AttemptRecord, EventKind, EventRecord, TurnRecord
from tests.feedback.conftest import TEST_KEY, Clock, MakeSettings, PgDatabase, settings_for
from tests.feedback.records import RAW_CHAT, RAW_USER, T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(30)

TABLES = (turns, turn_texts, attempts, events)


async def _counts(store: FeedbackStore) -> list[int]:
    async with store.connect() as conn:
        return [
            (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in TABLES
        ]


async def test_a_written_turn_reads_back_field_for_field(store: FeedbackStore) -> None:
    tried = (
        AttemptRecord(
            provider="openai", model="gpt-4o-mini", error="ProviderTimeout", latency_s=5.0, tier=2
        ),
        AttemptRecord(provider="groq", model="llama-3.1-8b-instant", error=None, latency_s=0.7),
    )
    turn = make_turn("t1", attempts=tried, reasons=("base_tier", "escalate_failed_answer"), tier=2)
    await store.write([turn, make_event(EventKind.RATING, turn_id="t1", rating="up", when=at(1))])

    view = await open_turn(store, "t1")

    got = view.turn
    assert (got.turn_id, got.at, got.channel, got.surface) == ("t1", T0, "telegram", "private")
    assert (got.user_hash, got.chat_hash) == (store.hash_id(RAW_USER), store.hash_id(RAW_CHAT))
    assert got.conversation_id == store.hash_id(turn.conversation_id)
    assert got.signals == turn.signals
    assert (got.tier, got.confidence, got.reasons) == (2, 0.8, turn.reasons)
    assert (got.provider, got.model) == ("groq", "llama-3.1-8b-instant")
    assert (got.tokens_in, got.tokens_out) == (400, 100)
    assert (got.cost_usd, got.cost_if_top, got.cost_if_mid) == (0.001, 0.01, 0.004)
    assert (got.ttft_s, got.total_s, got.outcome) == (0.5, 1.0, "ok")
    assert (got.message_text, got.answer_text) == (turn.message_text, turn.answer_text)
    assert view.attempts == tried
    assert [(e.kind, e.rating, e.at) for e in view.events] == [("rating", "up", at(1))]


async def test_a_naive_time_is_read_as_utc(store: FeedbackStore) -> None:
    await store.write([make_turn("t1", when=T0.replace(tzinfo=None))])
    assert (await open_turn(store, "t1")).turn.at == T0


async def test_writing_the_same_batch_twice_stores_it_once(store: FeedbackStore) -> None:
    batch: list[TurnRecord | EventRecord] = [
        make_turn("t1"),
        make_event(EventKind.STOP_PRESSED, turn_id="t1"),
    ]
    await store.write(batch)
    await store.write(batch)
    assert await _counts(store) == [1, 1, 1, 1]


def _columns_containing(sync: Connection, needle: str) -> list[str]:
    meta = MetaData()
    meta.reflect(sync)
    hits = []
    for table in meta.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text):
                query = select(func.count()).select_from(table).where(column.contains(needle))
                if sync.execute(query).scalar_one():
                    hits.append(f"{table.name}.{column.name}")
    return sorted(hits)


async def test_no_raw_user_or_chat_id_is_stored_in_any_column(store: FeedbackStore) -> None:
    await store.write(
        [
            make_turn("t1"),
            make_turn("t2", when=at(1)),
            make_event(EventKind.MISROUTE, turn_id="t2", related="t1", cause="rephrase"),
            make_event(EventKind.DELIVERY_FAILURE, turn_id="t2", user=None),
        ]
    )
    pseudonym = store.hash_id(RAW_USER)
    async with store.connect() as conn:
        raw = await conn.run_sync(lambda c: _columns_containing(c, RAW_USER[4:]))
        raw_chat = await conn.run_sync(lambda c: _columns_containing(c, RAW_CHAT[4:]))
        hashed = await conn.run_sync(lambda c: _columns_containing(c, pseudonym))
    assert (raw, raw_chat) == ([], [])
    assert hashed == ["events.user_hash", "turns.user_hash"]


async def test_pseudonyms_are_keyed_versioned_hmacs(store: FeedbackStore) -> None:
    pseudonym = store.hash_id(RAW_USER)
    assert pseudonym == IdHasher(SecretStr(TEST_KEY))(RAW_USER)
    assert pseudonym.startswith("h1_")
    assert len(pseudonym) == 35
    assert IdHasher(SecretStr("another-key-of-16+chars"))(RAW_USER) != pseudonym
    assert IdHasher(SecretStr(TEST_KEY), version=2)(RAW_USER).startswith("h2_")
    assert "test-id" not in repr(IdHasher(SecretStr(TEST_KEY)))


async def test_forget_deletes_one_users_turns_and_the_events_about_them(
    store: FeedbackStore,
) -> None:
    other = "someone-else"
    await store.write(
        [
            make_turn("mine-1"),
            make_turn("mine-2", when=at(1)),
            make_turn("theirs", user=other, chat=other),
            make_event(EventKind.MISROUTE, turn_id="mine-2", related="mine-1", user=None),
            make_event(EventKind.RATING, turn_id="mine-2", rating="down", user=None, chat=None),
            make_event(EventKind.RATE_LIMITED, user=None, chat=RAW_USER),
            make_event(EventKind.BUDGET_BLOCKED),
            make_event(EventKind.RATING, turn_id="theirs", rating="up", user=other, chat=other),
        ]
    )

    gone = await store.forget(RAW_USER)

    assert gone == Forgotten(turns=2, attempts=2, events=4)
    assert await _counts(store) == [1, 1, 1, 1]
    assert (await open_turn(store, "theirs")).turn.user_hash == store.hash_id(other)
    assert await store.forget(RAW_USER) == Forgotten(turns=0, attempts=0, events=0)


async def test_text_is_kept_inside_the_retention_window_and_purged_after(
    make_settings: MakeSettings,
) -> None:
    clock = Clock(T0 + timedelta(days=10))
    store = await FeedbackStore.open(make_settings(text_retention_days=30), clock=clock)
    try:
        await store.write([make_turn("recent"), make_turn("old", when=T0 - timedelta(days=15))])
        await store.write([make_turn("too-old", when=T0 - timedelta(days=21))])
        assert (await open_turn(store, "old")).turn.message_text is not None
        assert (await open_turn(store, "too-old")).turn.message_text is None

        clock.now = T0 + timedelta(days=16)
        assert await store.purge_texts() == 1

        old, recent = await open_turn(store, "old"), await open_turn(store, "recent")
        assert (old.turn.message_text, old.turn.answer_text) == (None, None)
        assert old.turn.cost_usd == 0.001
        assert recent.turn.answer_text == "Open Settings, then Security."
        assert await store.purge_texts() == 0
    finally:
        await store.aclose()


async def test_retention_zero_never_stores_text(make_settings: MakeSettings) -> None:
    store = await FeedbackStore.open(make_settings(text_retention_days=0))
    try:
        await store.write([make_turn("t1")])
        view = await open_turn(store, "t1")
        assert (view.turn.message_text, view.turn.answer_text) == (None, None)
        assert await _counts(store) == [1, 0, 1, 0]
    finally:
        await store.aclose()


async def test_a_turn_without_text_stores_no_text_row(store: FeedbackStore) -> None:
    await store.write([make_turn("t1", message=None, answer=None)])
    assert await _counts(store) == [1, 0, 1, 0]


async def test_data_the_database_refuses_is_not_transient(store: FeedbackStore) -> None:
    broken = replace(make_turn("t1"), channel=None)  # type: ignore[arg-type]  # a caller's bug
    with pytest.raises(StoreError) as refused:
        await store.write([broken])
    assert refused.value.transient is False


async def test_a_malformed_record_is_not_transient(store: FeedbackStore) -> None:
    broken = replace(make_turn("t1"), user_id=12345)  # type: ignore[arg-type]  # a caller's bug
    with pytest.raises(StoreError, match="malformed") as refused:
        await store.write([broken])
    assert refused.value.transient is False


async def test_query_failures_surface_as_store_errors(store: FeedbackStore) -> None:
    with pytest.raises(StoreError, match="query failed"):
        async with store.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))


async def test_opening_an_unreachable_database_says_which(tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.sqlite3'}"
    with pytest.raises(StoreError, match="cannot open the feedback database"):
        await FeedbackStore.open(settings_for(missing))
    closed_port = "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/nothing"
    with pytest.raises(StoreError, match=r"postgres:\*\*\*@127.0.0.1:1") as failed:
        await FeedbackStore.open(settings_for(closed_port))
    assert "s3cret" not in str(failed.value)
    # aiosqlite stops the thread of a failed connect with a future nobody awaits; let it land
    # before this test's loop closes, or the thread reports a closed loop during a later test.
    await asyncio.sleep(0.1)


async def test_a_database_that_went_down_surfaces_as_store_errors(pg_database: PgDatabase) -> None:
    store = await FeedbackStore.open(settings_for(pg_database.url))
    try:
        await pg_database.refuse_connections()
        with pytest.raises(StoreError, match="query failed"):
            await build_report(store, since=None, until=None)
        with pytest.raises(StoreError, match="forget failed"):
            await store.forget(RAW_USER)
        with pytest.raises(StoreError, match="purge failed"):
            await store.purge_texts()
        with pytest.raises(StoreError, match="write failed") as refused:
            await store.write([make_turn("t1")])
        assert refused.value.transient is True
    finally:
        await pg_database.accept_connections()
        await store.aclose()
