"""Builds the feedback log's record of a turn from its message, decision and delivered outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bots.delivery import Delivered
from bots.types import InboundMessage
from feedback.types import (
    AttemptRecord,
    ReasonRecord,
    Signals,
    TurnOutcome,
    TurnRecord,
)
from routing.execution_types import Link, Outcome
from routing.providers.base import Usage
from routing.types import Decision


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFacts:
    """What the pipeline knows about one answered turn once its delivery ended."""

    turn_id: str
    message: InboundMessage
    """The message answered (the last of a coalesced turn, or the button press)."""
    question: str
    decision: Decision
    delivered: Delivered
    at: datetime
    elapsed_s: float
    """Time from the start of the turn to the end of its delivery."""


def turn_record(facts: TurnFacts, chains: Sequence[Sequence[Link]]) -> TurnRecord:
    """The turn as the feedback log keeps it; counterfactual costs use the top and middle
    tiers' first models (None when they are not priced)."""
    message, decision, delivered = facts.message, facts.decision, facts.delivered
    outcome = delivered.outcome
    scores = decision.scores
    return TurnRecord(
        turn_id=facts.turn_id,
        conversation_id=message.chat_id,
        at=facts.at,
        channel=message.channel,
        surface=message.chat_type,
        user_id=message.user_id,
        chat_id=message.chat_id,
        signals=Signals(
            complexity=scores.complexity,
            frustration=scores.frustration,
            rephrase=scores.rephrase,
            history_tokens=scores.history_tokens,
        ),
        tier=decision.tier if outcome is None or outcome.tier is None else outcome.tier,
        confidence=decision.confidence,
        reasons=tuple(
            ReasonRecord(code=r.code, text=r.text)
            for r in (*decision.reasons, *(() if outcome is None else outcome.reasons))
        ),
        provider=None if outcome is None else outcome.provider,
        model=None if outcome is None else outcome.model,
        attempts=() if outcome is None else _attempts(outcome),
        tokens_in=0 if outcome is None else outcome.input_tokens,
        tokens_out=0 if outcome is None else outcome.output_tokens,
        cost_usd=0.0 if outcome is None else outcome.cost_usd,
        cost_if_top=_priced(chains, len(chains), outcome),
        cost_if_mid=_priced(chains, (len(chains) + 1) // 2, outcome),
        ttft_s=None if outcome is None else outcome.ttft_s,
        total_s=facts.elapsed_s if outcome is None else outcome.total_s,
        outcome=_outcome(delivered),
        message_text=facts.question,
        answer_text=delivered.text,
    )


def _outcome(delivered: Delivered) -> TurnOutcome:
    if delivered.stopped:
        return "stopped"
    return "ok" if delivered.outcome is not None and delivered.outcome.ok else "failed"


def _attempts(outcome: Outcome) -> tuple[AttemptRecord, ...]:
    return tuple(
        AttemptRecord(
            provider=a.provider, model=a.model, error=a.error, latency_s=a.latency_s, tier=a.tier
        )
        for a in outcome.attempts
    )


def _priced(chains: Sequence[Sequence[Link]], tier: int, outcome: Outcome | None) -> float | None:
    """The outcome's tokens at the list price of `tier`'s first model, if it has one."""
    if outcome is None or not 1 <= tier <= len(chains) or not chains[tier - 1]:
        return None
    spec = chains[tier - 1][0].spec
    if spec is None:
        return None
    return spec.cost(Usage(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens))
