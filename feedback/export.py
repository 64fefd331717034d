"""Exports of turns for router tuning: JSONL (nested values) or CSV (flat), filtered like review.

Each line is one turn with its decision, signals, attempts, cost, latency, outcome, the ratings
users gave it and the causes of misroutes pointing at it, and, while retained, its texts. Rows
are streamed in chunks, so an export of millions of turns runs in constant memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.filters import TurnFilter, turn_conditions
from feedback.review import Marks, TurnView, event_marks, turn_view, turns_with_text
from feedback.schema import attempts, turns
from feedback.store import FeedbackStore

ExportFormat = Literal["jsonl", "csv"]

CHUNK = 1000

COLUMNS = (
    "turn_id",
    "at",
    "channel",
    "surface",
    "user_hash",
    "chat_hash",
    "conversation_id",
    "complexity",
    "frustration",
    "rephrase",
    "history_tokens",
    "tier",
    "confidence",
    "reason_codes",
    "reasons",
    "provider",
    "model",
    "attempts",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "cost_if_top",
    "cost_if_mid",
    "ttft_s",
    "total_s",
    "outcome",
    "ratings",
    "misrouted",
    "misroute_causes",
    "message_text",
    "answer_text",
)
"""The fields of every exported turn, in CSV column order."""

Value = str | int | float | bool | None | list["Value"] | dict[str, "Value"]


async def export_turns(
    store: FeedbackStore,
    flt: TurnFilter,
    out: IO[str],
    *,
    fmt: ExportFormat = "jsonl",
    include_text: bool = True,
    chunk_size: int = CHUNK,
) -> int:
    """Write every turn `flt` selects to `out`, oldest first; return how many were written.

    Rows are read `chunk_size` at a time, with their attempts and events looked up per chunk.
    """
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    stmt = turns_with_text().where(turn_conditions(flt)).order_by(turns.c.at, turns.c.turn_id)
    written = 0
    async with store.connect() as rows_conn, store.connect() as lookup:
        result = await rows_conn.stream(stmt.execution_options(yield_per=chunk_size))
        async for chunk in result.mappings().partitions(chunk_size):
            views = [turn_view(row) for row in chunk]
            records = await _records(lookup, views, include_text)
            for record in records:
                if writer is None:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    writer.writerow([_flat(record[name]) for name in COLUMNS])
            written += len(records)
    return written


async def _records(
    conn: AsyncConnection, views: Sequence[TurnView], include_text: bool
) -> list[dict[str, Value]]:
    ids = [v.turn_id for v in views]
    marks = await event_marks(conn, ids)
    tried = await conn.execute(
        select(attempts).where(attempts.c.turn_id.in_(ids)).order_by(attempts.c.seq)
    )
    calls: dict[str, list[Value]] = {}
    for a in tried.mappings():
        calls.setdefault(a.turn_id, []).append(
            {
                "tier": a.tier,
                "provider": a.provider,
                "model": a.model,
                "error": a.error,
                "latency_s": a.latency_s,
            }
        )
    return [
        _record(v, marks.get(v.turn_id, Marks()), calls.get(v.turn_id, []), include_text)
        for v in views
    ]


def _record(
    view: TurnView,
    marks: Marks,
    calls: list[Value],
    include_text: bool,
) -> dict[str, Value]:
    s = view.signals
    return {
        "turn_id": view.turn_id,
        "at": view.at.isoformat(),
        "channel": view.channel,
        "surface": view.surface,
        "user_hash": view.user_hash,
        "chat_hash": view.chat_hash,
        "conversation_id": view.conversation_id,
        "complexity": s.complexity,
        "frustration": s.frustration,
        "rephrase": s.rephrase,
        "history_tokens": s.history_tokens,
        "tier": view.tier,
        "confidence": view.confidence,
        "reason_codes": [r.code for r in view.reasons],
        "reasons": [{"code": r.code, "text": r.text} for r in view.reasons],
        "provider": view.provider,
        "model": view.model,
        "attempts": calls,
        "tokens_in": view.tokens_in,
        "tokens_out": view.tokens_out,
        "cost_usd": view.cost_usd,
        "cost_if_top": view.cost_if_top,
        "cost_if_mid": view.cost_if_mid,
        "ttft_s": view.ttft_s,
        "total_s": view.total_s,
        "outcome": view.outcome,
        "ratings": list(marks.ratings),
        "misrouted": bool(marks.misroute_causes),
        "misroute_causes": list(marks.misroute_causes),
        "message_text": view.message_text if include_text else None,
        "answer_text": view.answer_text if include_text else None,
    }


def _flat(value: Value) -> str | int | float | bool:
    """A CSV cell: lists of codes space-separated, nested values as JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(str(item) for item in value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value
