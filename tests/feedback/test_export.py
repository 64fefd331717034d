"""Exports for router tuning: JSONL with nested values, CSV with flat cells, filtered as review."""

from __future__ import annotations

import csv
import io
import json

import pytest

from feedback import export
from feedback.export import COLUMNS, export_turns
from feedback.filters import TurnFilter
from feedback.store import FeedbackStore
from feedback.types import AttemptRecord, EventKind
from tests.feedback.records import RAW_USER, T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(30)

TRIED = (
    AttemptRecord(provider="groq", model="llama-3.1-8b-instant", error="ProviderTimeout",
                  latency_s=5.0, tier=1),
    AttemptRecord(provider="openai", model="gpt-4o-mini", error=None, latency_s=1.25, tier=2),
)  # fmt: skip


@pytest.fixture
async def loaded(store: FeedbackStore) -> FeedbackStore:
    await store.write(
        [
            make_turn("e1", reasons=("base_tier", "complexity"), attempts=TRIED, tier=2),
            make_turn("e2", when=at(1), channel="whatsapp", message='say "hi", then\nbye'),
            make_turn("e3", when=at(2), cost_if_top=None, ttft=None, answer=None),
            make_event(EventKind.MISROUTE, turn_id="e2", related="e1", cause="rephrase"),
            make_event(EventKind.RATING, turn_id="e2", rating="down"),
        ]
    )
    return store


async def _export(store: FeedbackStore, flt: TurnFilter, fmt: export.ExportFormat) -> str:
    out = io.StringIO()
    await export_turns(store, flt, out, fmt=fmt)
    return out.getvalue()


async def test_jsonl_has_one_nested_object_per_turn_oldest_first(loaded: FeedbackStore) -> None:
    lines = [
        json.loads(line) for line in (await _export(loaded, TurnFilter(), "jsonl")).splitlines()
    ]
    assert [line["turn_id"] for line in lines] == ["e1", "e2", "e3"]
    first = lines[0]
    assert list(first) == list(COLUMNS)
    assert first["at"] == T0.isoformat()
    assert first["user_hash"] == loaded.hash_id(RAW_USER)
    assert first["reason_codes"] == ["base_tier", "complexity"]
    assert first["reasons"][1] == {"code": "complexity", "text": "because complexity"}
    assert first["attempts"] == [
        {"tier": 1, "provider": "groq", "model": "llama-3.1-8b-instant",
         "error": "ProviderTimeout", "latency_s": 5.0},
        {"tier": 2, "provider": "openai", "model": "gpt-4o-mini", "error": None,
         "latency_s": 1.25},
    ]  # fmt: skip
    assert (first["misrouted"], first["misroute_causes"], first["ratings"]) == (
        True,
        ["rephrase"],
        [],
    )
    assert (lines[1]["ratings"], lines[1]["misrouted"]) == (["down"], False)
    assert lines[1]["message_text"] == 'say "hi", then\nbye'
    assert (lines[2]["cost_if_top"], lines[2]["ttft_s"], lines[2]["answer_text"]) == (None,) * 3


async def test_csv_has_a_header_and_flat_cells(loaded: FeedbackStore) -> None:
    rows = list(csv.DictReader(io.StringIO(await _export(loaded, TurnFilter(), "csv"))))
    assert [row["turn_id"] for row in rows] == ["e1", "e2", "e3"]
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["reason_codes"] == "base_tier complexity"
    assert json.loads(rows[0]["attempts"])[1]["model"] == "gpt-4o-mini"
    assert json.loads(rows[0]["reasons"])[0]["code"] == "base_tier"
    assert (rows[0]["misrouted"], rows[0]["misroute_causes"], rows[0]["tier"]) == (
        "True",
        "rephrase",
        "2",
    )
    assert rows[1]["message_text"] == 'say "hi", then\nbye'
    assert (rows[2]["cost_if_top"], rows[2]["ttft_s"], rows[2]["answer_text"]) == ("", "", "")


async def test_export_is_filtered_like_review(loaded: FeedbackStore) -> None:
    text = await _export(loaded, TurnFilter(channel="whatsapp"), "jsonl")
    assert [json.loads(line)["turn_id"] for line in text.splitlines()] == ["e2"]
    assert await _export(loaded, TurnFilter(since=at(10)), "csv") == ",".join(COLUMNS) + "\n"


async def test_export_can_leave_texts_out(loaded: FeedbackStore) -> None:
    out = io.StringIO()
    assert await export_turns(loaded, TurnFilter(), out, include_text=False) == 3
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {(line["message_text"], line["answer_text"]) for line in lines} == {(None, None)}


async def test_export_streams_in_chunks(store: FeedbackStore) -> None:
    await store.write([make_turn(f"t{i}", when=at(i)) for i in range(5)])
    await store.write([make_event(EventKind.RATING, turn_id="t4", rating="up")])
    out = io.StringIO()
    assert await export_turns(store, TurnFilter(), out, chunk_size=2) == 5
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["turn_id"], line["ratings"]) for line in lines][-2:] == [
        ("t3", []),
        ("t4", ["up"]),
    ]
