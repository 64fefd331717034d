"""Value types of the feedback log: what a turn and an event record, as handed to `FeedbackLog`.

Records carry the *raw* user, chat and conversation ids as the caller knows them; the store
replaces them with keyed HMACs before anything is written, so a raw id never reaches the
database. Turn and event ids are stored as given, so they must be opaque (a uuid4 hex, an
update id), never built from a user or chat id; `detail` and `cause` must not carry message
text or raw ids either. Times are timezone-aware UTC (a naive datetime is read as UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import uuid4

TurnOutcome = Literal["ok", "failed", "stopped"]
"""How a turn ended: answered, no answer could be produced, or the user pressed stop."""

Rating = Literal["up", "down", "stronger"]
"""A user's verdict on an answer; `stronger` asks for the same question on a higher tier."""

OUTCOMES: tuple[TurnOutcome, ...] = ("ok", "failed", "stopped")
RATINGS: tuple[Rating, ...] = ("up", "down", "stronger")


class EventKind(StrEnum):
    """What an event says happened; stored as its string value."""

    ESCALATION = "escalation"
    """A turn went above its base tier; `cause` says why (frustration, rephrase, failure...)."""
    FRUSTRATION_RETRY = "frustration_retry"
    """The user was frustrated and the answer was retried."""
    MISROUTE = "misroute"
    """An earlier turn (`related_turn_id`) was answered on too low a tier; `cause` says why."""
    RATING = "rating"
    """The user rated the answer of `turn_id` (`rating` holds up/down/stronger)."""
    STOP_PRESSED = "stop_pressed"
    DELIVERY_FAILURE = "delivery_failure"
    DEAD_LETTER = "dead_letter"
    RATE_LIMITED = "rate_limited"
    BUDGET_BLOCKED = "budget_blocked"
    BREAKER_TRIP = "breaker_trip"
    """A provider breaker opened; `cause` holds `provider:model`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReasonRecord:
    """One reason of a routing decision: a stable machine code plus human-readable text."""

    code: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Signals:
    """The signal scores the decision was made from."""

    complexity: float
    frustration: float
    rephrase: float
    history_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One provider call of a turn; `error` is the error class name, None when it succeeded.

    A link skipped without a call (an open breaker) has tier 0 and `error="breaker_open"`.
    """

    provider: str
    model: str
    error: str | None
    latency_s: float
    tier: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRecord:
    """Everything the log keeps about one answered (or failed, or stopped) message.

    `cost_if_top` and `cost_if_mid` are the counterfactual prices of this turn's tokens on the
    top tier's and the middle tier's primary model, priced when the turn happened; the report's
    savings are computed from them (None when the caller could not price the turn).
    """

    turn_id: str
    conversation_id: str
    at: datetime
    channel: str
    surface: str
    user_id: str
    chat_id: str
    signals: Signals
    tier: int
    confidence: float
    reasons: tuple[ReasonRecord, ...] = ()
    provider: str | None = None
    model: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    cost_if_top: float | None = None
    cost_if_mid: float | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    outcome: TurnOutcome = "ok"
    message_text: str | None = None
    answer_text: str | None = None


def new_event_id() -> str:
    """Return a fresh random event id (the primary key that makes a retried write idempotent)."""
    return uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """Something that happened around a turn: an escalation, a rating, a misroute, a failure."""

    kind: EventKind
    at: datetime
    turn_id: str | None = None
    related_turn_id: str | None = None
    """For a misroute: the earlier turn that was answered on too low a tier."""
    user_id: str | None = None
    chat_id: str | None = None
    cause: str | None = None
    rating: Rating | None = None
    detail: str = ""
    event_id: str = field(default_factory=new_event_id)
