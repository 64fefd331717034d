"""Review queries: filtered lists of turns, and one turn with the conversation around it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, Select, UnaryExpression, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from feedback.errors import TurnNotFound
from feedback.filters import TurnFilter, turn_conditions
from feedback.schema import attempts, events, turn_texts, turns
from feedback.store import FeedbackStore
from feedback.types import AttemptRecord, EventKind, ReasonRecord, Signals

_IN_CHUNK = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnView:
    """A turn as stored: pseudonymous ids, and texts only while they are retained."""

    turn_id: str
    at: datetime
    channel: str
    surface: str
    user_hash: str
    chat_hash: str
    conversation_id: str
    signals: Signals
    tier: int
    confidence: float
    reasons: tuple[ReasonRecord, ...]
    provider: str | None
    model: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    cost_if_top: float | None
    cost_if_mid: float | None
    ttft_s: float | None
    total_s: float
    outcome: str
    message_text: str | None
    answer_text: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """An event as stored."""

    event_id: str
    kind: str
    at: datetime
    turn_id: str | None
    related_turn_id: str | None
    user_hash: str | None
    chat_hash: str | None
    cause: str | None
    rating: str | None
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Marks:
    """What later events said about a turn: its ratings and the causes of misroutes on it."""

    ratings: tuple[str, ...] = ()
    misroute_causes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewLine:
    """One turn of a review list, with its marks."""

    turn: TurnView
    marks: Marks = field(default_factory=Marks)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationView:
    """One turn in full, with the turns of the same chat just before and after it."""

    turn: TurnView
    attempts: tuple[AttemptRecord, ...]
    events: tuple[StoredEvent, ...]
    before: tuple[TurnView, ...]
    after: tuple[TurnView, ...]


def turns_with_text() -> Select[tuple[object, ...]]:
    """SELECT every turn column plus its retained texts (NULL once purged or never kept)."""
    joined = turns.outerjoin(turn_texts, turn_texts.c.turn_id == turns.c.turn_id)
    return select(turns, turn_texts.c.message_text, turn_texts.c.answer_text).select_from(joined)


def turn_view(row: RowMapping) -> TurnView:
    """Build a TurnView from a row of `turns_with_text()`."""
    reasons = tuple(ReasonRecord(code=r["code"], text=r["text"]) for r in json.loads(row.reasons))
    signals = Signals(
        complexity=row.complexity,
        frustration=row.frustration,
        rephrase=row.rephrase,
        history_tokens=row.history_tokens,
    )
    return TurnView(
        turn_id=row.turn_id,
        at=row.at,
        channel=row.channel,
        surface=row.surface,
        user_hash=row.user_hash,
        chat_hash=row.chat_hash,
        conversation_id=row.conversation_id,
        signals=signals,
        tier=row.tier,
        confidence=row.confidence,
        reasons=reasons,
        provider=row.provider,
        model=row.model,
        tokens_in=row.tokens_in,
        tokens_out=row.tokens_out,
        cost_usd=row.cost_usd,
        cost_if_top=row.cost_if_top,
        cost_if_mid=row.cost_if_mid,
        ttft_s=row.ttft_s,
        total_s=row.total_s,
        outcome=row.outcome,
        message_text=row.message_text,
        answer_text=row.answer_text,
    )


def _event(row: RowMapping) -> StoredEvent:
    return StoredEvent(
        event_id=row.event_id,
        kind=row.kind,
        at=row.at,
        turn_id=row.turn_id,
        related_turn_id=row.related_turn_id,
        user_hash=row.user_hash,
        chat_hash=row.chat_hash,
        cause=row.cause,
        rating=row.rating,
        detail=row.detail,
    )


async def review_turns(
    store: FeedbackStore, flt: TurnFilter, *, limit: int = 50
) -> list[ReviewLine]:
    """The newest `limit` turns that match `flt`, newest first, with their marks."""
    stmt = (
        turns_with_text()
        .where(turn_conditions(flt))
        .order_by(turns.c.at.desc(), turns.c.turn_id)
        .limit(limit)
    )
    async with store.connect() as conn:
        views = [turn_view(row) for row in (await conn.execute(stmt)).mappings()]
        marks = await event_marks(conn, [v.turn_id for v in views])
    return [ReviewLine(turn=v, marks=marks.get(v.turn_id, Marks())) for v in views]


async def event_marks(conn: AsyncConnection, turn_ids: Sequence[str]) -> dict[str, Marks]:
    """Ratings and misroute causes of the given turns, in event order."""
    ratings: dict[str, list[str]] = {}
    causes: dict[str, list[str]] = {}
    for start in range(0, len(turn_ids), _IN_CHUNK):
        chunk = turn_ids[start : start + _IN_CHUNK]
        stmt = (
            select(events.c.kind, events.c.turn_id, events.c.related_turn_id, events.c.rating)
            .add_columns(events.c.cause)
            .where(
                or_(
                    and_(events.c.kind == str(EventKind.RATING), events.c.turn_id.in_(chunk)),
                    and_(
                        events.c.kind == str(EventKind.MISROUTE),
                        events.c.related_turn_id.in_(chunk),
                    ),
                )
            )
            .order_by(events.c.at, events.c.event_id)
        )
        for row in (await conn.execute(stmt)).mappings():
            if row.kind == EventKind.RATING:
                ratings.setdefault(row.turn_id, []).append(row.rating or "")
            else:
                causes.setdefault(row.related_turn_id, []).append(row.cause or "")
    return {
        turn_id: Marks(
            ratings=tuple(ratings.get(turn_id, ())), misroute_causes=tuple(causes.get(turn_id, ()))
        )
        for turn_id in set(ratings) | set(causes)
    }


async def open_turn(store: FeedbackStore, turn_id: str, *, context: int = 5) -> ConversationView:
    """The turn `turn_id` with its attempts, its events and `context` turns of the same chat
    either side; raise TurnNotFound if there is no such turn."""
    async with store.connect() as conn:
        row = (await conn.execute(turns_with_text().where(turns.c.turn_id == turn_id))).mappings()
        found = row.first()
        if found is None:
            raise TurnNotFound(f"no turn {turn_id!r} in the feedback log")
        turn = turn_view(found)
        same_chat = turns.c.chat_hash == turn.chat_hash
        later = or_(turns.c.at > turn.at, and_(turns.c.at == turn.at, turns.c.turn_id > turn_id))
        earlier = or_(turns.c.at < turn.at, and_(turns.c.at == turn.at, turns.c.turn_id < turn_id))
        before = await _turns(
            conn, and_(same_chat, earlier), context, (turns.c.at.desc(), turns.c.turn_id.desc())
        )
        after = await _turns(conn, and_(same_chat, later), context, (turns.c.at, turns.c.turn_id))
        tried = await conn.execute(
            select(attempts).where(attempts.c.turn_id == turn_id).order_by(attempts.c.seq)
        )
        happened = await conn.execute(
            select(events)
            .where(or_(events.c.turn_id == turn_id, events.c.related_turn_id == turn_id))
            .order_by(events.c.at, events.c.event_id)
        )
        return ConversationView(
            turn=turn,
            attempts=tuple(_attempt(a) for a in tried.mappings()),
            events=tuple(_event(e) for e in happened.mappings()),
            before=tuple(reversed(before)),
            after=tuple(after),
        )


async def _turns(
    conn: AsyncConnection,
    where: ColumnElement[bool],
    limit: int,
    order: Iterable[UnaryExpression[object] | ColumnElement[object]],
) -> list[TurnView]:
    stmt = turns_with_text().where(where).order_by(*order).limit(limit)
    return [turn_view(row) for row in (await conn.execute(stmt)).mappings()]


def _attempt(row: RowMapping) -> AttemptRecord:
    return AttemptRecord(
        provider=row.provider,
        model=row.model,
        error=row.error,
        latency_s=row.latency_s,
        tier=row.tier,
    )
