"""Builders of turn and event records for the feedback tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedback.types import (
    AttemptRecord,
    EventKind,
    EventRecord,
    Rating,
    ReasonRecord,
    Signals,
    TurnOutcome,
    TurnRecord,
)

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
RAW_USER = "RAW-USER-4c7e1d"
RAW_CHAT = "RAW-CHAT-9b3f2a"


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def _answered(tier: int) -> AttemptRecord:
    return AttemptRecord(
        provider="groq", model="llama-3.1-8b-instant", error=None, latency_s=0.9, tier=tier
    )


def make_turn(
    turn_id: str,
    *,
    when: datetime = T0,
    user: str = RAW_USER,
    chat: str = RAW_CHAT,
    channel: str = "telegram",
    surface: str = "private",
    tier: int = 1,
    reasons: tuple[str, ...] = ("base_tier",),
    cost: float = 0.001,
    cost_if_top: float | None = 0.01,
    cost_if_mid: float | None = 0.004,
    ttft: float | None = 0.5,
    total: float = 1.0,
    outcome: TurnOutcome = "ok",
    attempts: tuple[AttemptRecord, ...] | None = None,
    message: str | None = "how do I reset my password?",
    answer: str | None = "Open Settings, then Security.",
) -> TurnRecord:
    """A turn with sensible defaults for everything a test does not care about."""
    return TurnRecord(
        turn_id=turn_id,
        conversation_id=f"conv-{chat}",
        at=when,
        channel=channel,
        surface=surface,
        user_id=user,
        chat_id=chat,
        signals=Signals(complexity=0.3, frustration=0.1, rephrase=0.0, history_tokens=120),
        tier=tier,
        confidence=0.8,
        reasons=tuple(ReasonRecord(code=code, text=f"because {code}") for code in reasons),
        provider="groq",
        model="llama-3.1-8b-instant",
        attempts=attempts if attempts is not None else (_answered(tier),),
        tokens_in=400,
        tokens_out=100,
        cost_usd=cost,
        cost_if_top=cost_if_top,
        cost_if_mid=cost_if_mid,
        ttft_s=ttft,
        total_s=total,
        outcome=outcome,
        message_text=message,
        answer_text=answer,
    )


def make_event(
    kind: EventKind,
    *,
    turn_id: str | None = None,
    related: str | None = None,
    when: datetime = T0,
    user: str | None = RAW_USER,
    chat: str | None = RAW_CHAT,
    cause: str | None = None,
    rating: Rating | None = None,
) -> EventRecord:
    """An event about a turn."""
    return EventRecord(
        kind=kind,
        at=when,
        turn_id=turn_id,
        related_turn_id=related,
        user_id=user,
        chat_id=chat,
        cause=cause,
        rating=rating,
    )
