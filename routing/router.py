"""The router: computes a conversation's signals and walks the policy's steps to a Decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.policy import Policy
from routing.ports import ComplexityScorer
from routing.signals.frustration import frustration
from routing.signals.history import history
from routing.signals.rephrase import rephrase
from routing.types import Conversation, Decision, Reason, Scores


@dataclass(slots=True)
class _Ladder:
    """The tier being decided, with the reasons for every move; local to one decision."""

    policy: Policy
    tier: int
    reasons: list[Reason] = field(default_factory=list)

    def raise_to(self, tier: int, code: str, text: str) -> None:
        if tier > self.tier:
            self.tier = min(tier, self.policy.top)
            self.reasons.append(Reason(code=code, text=text))

    def cap_at(self, tier: int, code: str, text: str) -> None:
        if tier < self.tier:
            self.tier = tier
            self.reasons.append(Reason(code=code, text=text))


@dataclass(frozen=True, slots=True)
class Router:
    """Decides the tier of every message from the conversation itself and the policy."""

    policy: Policy
    complexity: ComplexityScorer

    def decide(self, conversation: Conversation) -> Decision:
        """Return the tier for the newest user turn, with scores, confidence and reasons."""
        p = self.policy
        last = conversation.last_user_turn()
        text = last.text if last is not None else ""
        cx = self.complexity(text)
        fr = frustration(conversation)
        rp = rephrase(
            conversation,
            window_turns=p.rephrase_window_turns,
            window_seconds=p.rephrase_window_seconds,
            threshold=p.rephrase_threshold,
        )
        hist = history(
            conversation, context_tokens=p.context_tokens, reserve_tokens=p.response_reserve_tokens
        )
        scores = Scores(
            complexity=round(cx.score, 4),
            frustration=round(fr.score, 4),
            rephrase=round(rp.score, 4),
            history_tokens=hist.tokens,
        )
        ladder = _Ladder(policy=p, tier=p.base_tier(cx.score))
        ladder.reasons.append(
            Reason(code="base_tier", text=f"complexity {cx.score:.2f} → {p.name(ladder.tier)}")
        )
        ladder.reasons.extend(cx.reasons)
        self._escalate(ladder, conversation, text, cx.score, fr.score, rp.score)
        ladder.reasons.extend(fr.reasons if fr.score >= p.frustration_threshold else ())
        ladder.reasons.extend(rp.reasons if rp.repeats is not None else ())
        self._limit(ladder, conversation, hist.fits_tier)
        ladder.reasons.extend(hist.reasons)
        return Decision(
            tier=ladder.tier,
            tier_name=p.name(ladder.tier),
            scores=scores,
            confidence=p.confidence(cx.score),
            reasons=tuple(ladder.reasons),
            repeats=rp.repeats,
        )

    def _escalate(
        self,
        ladder: _Ladder,
        conversation: Conversation,
        text: str,
        complexity: float,
        frustration_score: float,
        rephrase_score: float,
    ) -> None:
        """Apply the steps that raise the tier: rules, the confidence band, a failed answer."""
        p = self.policy
        floor, rule_reasons = p.rule_floor(text)
        if floor > ladder.tier:
            ladder.tier = floor
            ladder.reasons.extend(rule_reasons)
        near = p.near_threshold(complexity)
        if near is not None and p.base_tier(complexity) == ladder.tier:
            ladder.raise_to(
                ladder.tier + 1,
                "confidence_band",
                f"complexity {complexity:.2f} is within {p.confidence_band} below threshold {near}",
            )
        failed = []
        if frustration_score >= p.frustration_threshold:
            failed.append(f"frustration {frustration_score:.2f} >= {p.frustration_threshold}")
        if rephrase_score >= p.rephrase_threshold:
            failed.append(f"rephrase {rephrase_score:.2f} >= {p.rephrase_threshold}")
        if failed:
            previous = _last_answer_tier(conversation)
            start = max(ladder.tier, previous or 0)
            after = f" (previous answer on {p.name(previous)})" if previous else ""
            ladder.raise_to(start + 1, "escalate_failed_answer", "; ".join(failed) + after)

    def _limit(self, ladder: _Ladder, conversation: Conversation, fits_tier: int | None) -> None:
        """Apply context fit, channel floor and ceiling, single-tier mode and entitlement."""
        p = self.policy
        fit = fits_tier if fits_tier is not None else p.top
        ladder.raise_to(fit, "context_fit", f"history needs the {p.name(fit)} context window")
        channel = conversation.channel
        if channel is not None:
            floor = p.channel_floors.get(channel)
            if floor is not None:
                ladder.raise_to(floor, "channel_floor", f"{channel} floor is {p.name(floor)}")
            ceiling = p.channel_ceilings.get(channel)
            if ceiling is not None:
                ladder.cap_at(ceiling, "channel_ceiling", f"{channel} ceiling is {p.name(ceiling)}")
        if p.single_tier is not None:
            ladder.tier = p.single_tier
            ladder.reasons.append(
                Reason(
                    code="single_tier",
                    text=f"single-model mode: every message on {p.name(p.single_tier)}",
                )
            )
            return
        allowed = p.entitlement(conversation.user)
        ladder.cap_at(allowed, "entitlement_cap", f"user is entitled up to {p.name(allowed)}")


def _last_answer_tier(conversation: Conversation) -> int | None:
    """Return the tier that produced the newest assistant turn, if recorded."""
    for turn in reversed(conversation.turns):
        if turn.role == "assistant":
            return turn.tier
    return None
