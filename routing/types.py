"""Value types of the routing core: conversations, signal results and decisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One message of a chat: who said it, what, when, and which tier answered it."""

    role: Role
    text: str
    ts: float | None = None
    tier: int | None = None
    turn_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    """A chat's turns in order; the last user turn is the message being routed."""

    turns: tuple[Turn, ...]
    user: str | None = None
    channel: str | None = None
    conversation_id: str | None = None

    def user_turns(self) -> tuple[Turn, ...]:
        """Return the user turns, oldest first."""
        return tuple(t for t in self.turns if t.role == "user")

    def last_user_turn(self) -> Turn | None:
        """Return the newest user turn, or None for a conversation without one."""
        for turn in reversed(self.turns):
            if turn.role == "user":
                return turn
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """Why something happened: a stable machine code plus human-readable text."""

    code: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalResult:
    """A signal's score in [0, 1] and the reasons that produced it."""

    score: float
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RephraseResult:
    """A rephrase score plus the earlier user turn the new one repeats, if any."""

    score: float
    reasons: tuple[Reason, ...] = ()
    repeats: Turn | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryResult:
    """Estimated conversation tokens and the cheapest tier whose context window holds them."""

    tokens: int
    fits_tier: int | None
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Scores:
    """The numeric inputs of a decision, as reported by `route explain`."""

    complexity: float
    frustration: float
    rephrase: float
    history_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The tier chosen for a message, with its scores, confidence and reasons."""

    tier: int
    tier_name: str
    scores: Scores
    confidence: float
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    repeats: Turn | None = None

    def reason_codes(self) -> tuple[str, ...]:
        """Return the stable codes of the reasons, in order."""
        return tuple(r.code for r in self.reasons)
