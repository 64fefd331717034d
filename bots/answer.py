"""Turns a routed conversation into an executor job: system prompt, trimmed history, limits."""

from __future__ import annotations

from collections.abc import Sequence

from routing.execution_settings import ExecutionSettings
from routing.execution_types import Job
from routing.policy import Policy
from routing.providers import ChatMessage
from routing.signals.history import estimate_tokens
from routing.types import Conversation, Decision

DEFAULT_SYSTEM_PROMPT = "You are a helpful, concise assistant. Answer in the user's language."


def trim_to_window(
    messages: Sequence[ChatMessage], *, window_tokens: int, reserve_tokens: int
) -> tuple[ChatMessage, ...]:
    """Drop the oldest non-system messages until the rest fits the window (the newest stays)."""
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    budget = window_tokens - reserve_tokens - sum(estimate_tokens(m.content) for m in system)
    kept: list[ChatMessage] = []
    for message in reversed(rest):
        cost = estimate_tokens(message.content)
        if kept and cost > budget:
            break
        kept.append(message)
        budget -= cost
    return (*system, *reversed(kept))


def messages_of(conversation: Conversation, system_prompt: str) -> tuple[ChatMessage, ...]:
    """The conversation as chat messages, after a system prompt."""
    turns = [ChatMessage(role=t.role, content=t.text) for t in conversation.turns]
    return (ChatMessage(role="system", content=system_prompt), *turns)


def build_job(
    *,
    decision: Decision,
    messages: Sequence[ChatMessage],
    user: str | None,
    channel: str | None,
    policy: Policy,
    settings: ExecutionSettings,
    continuation: bool = False,
) -> Job:
    """The job for a decision: history trimmed to the tier's window; promotion stops at the
    user's entitlement and the channel's ceiling."""
    window = policy.context_tokens[decision.tier - 1]
    ceiling = min(policy.entitlement(user), policy.channel_ceilings.get(channel or "", policy.top))
    return Job(
        messages=trim_to_window(
            messages, window_tokens=window, reserve_tokens=policy.response_reserve_tokens
        ),
        tier=decision.tier,
        max_tier=policy.single_tier or max(decision.tier, ceiling),
        max_tokens=settings.max_output_tokens,
        max_attempts=settings.max_attempts,
        retry_non_answers=settings.retry_non_answers,
        continuation=continuation,
    )
