"""Value types of execution: chain links, jobs, deadlines, stream events and outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from routing.providers.base import ChatMessage, FinishReason, Usage
from routing.providers.catalog import ModelSpec
from routing.types import Reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One `provider:model` of a tier's chain, with its price and context window if known."""

    provider: str
    model: str
    spec: ModelSpec | None = None

    @property
    def key(self) -> str:
        """The breaker and metrics key, `provider:model`."""
        return f"{self.provider}:{self.model}"

    def cost(self, usage: Usage) -> float:
        """USD for `usage` at this model's list price; 0.0 when the model is not priced."""
        return 0.0 if self.spec is None else self.spec.cost(usage)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadlines:
    """Time limits of one request: first token per tier, between tokens, and in total."""

    first_token_s: tuple[float, ...]
    inter_token_s: float = 15.0
    total_s: float = 120.0

    def first_token_for(self, tier: int) -> float:
        """The first-token deadline of a 1-based tier (the last value covers higher tiers)."""
        return self.first_token_s[min(tier, len(self.first_token_s)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """What to answer, starting on which tier, and how far the executor may go."""

    messages: tuple[ChatMessage, ...]
    tier: int
    max_tier: int
    """The user's entitlement: promotion never goes above it."""
    max_tokens: int = 1024
    max_attempts: int = 3
    retry_non_answers: bool = True
    continuation: bool = False
    """True for clients that cannot drop shown text: a fallback continues instead of restarting."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    """The next piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    """The text shown so far is void: a fallback starts the answer again."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One provider call (or a skipped link, with `error` saying why and tier 0)."""

    tier: int
    provider: str
    model: str
    error: str | None
    detail: str
    latency_s: float
    ttft_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How a request ended: who answered, every attempt, tokens, cost and timings."""

    ok: bool
    tier: int | None
    provider: str | None
    model: str | None
    text: str
    attempts: tuple[Attempt, ...]
    reasons: tuple[Reason, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    ttft_s: float | None
    total_s: float
    finish_reason: FinishReason | None = None
    """Why the model stopped (`length` when the output cap cut it); None when nobody answered."""


ExecEvent = Delta | Restart | Outcome
