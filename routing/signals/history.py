"""History length: estimated tokens of a conversation against each tier's context window."""

from __future__ import annotations

from collections.abc import Sequence

from routing.types import Conversation, HistoryResult, Reason

PER_TURN_OVERHEAD = 4
"""Tokens that chat templates add around every message (role markers, separators)."""

BYTES_PER_TOKEN = 4
"""UTF-8 bytes per token: about 4 for English, and it scales up for Cyrillic and CJK text."""


def estimate_tokens(text: str) -> int:
    """Estimate the tokens of one message from its UTF-8 size (no tokenizer needed)."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN) + PER_TURN_OVERHEAD


def history(
    conversation: Conversation, *, context_tokens: Sequence[int], reserve_tokens: int
) -> HistoryResult:
    """Return the conversation's token estimate and the cheapest tier whose window holds it.

    `context_tokens[i]` is tier i+1's context window; `reserve_tokens` stay free for the answer.
    """
    tokens = sum(estimate_tokens(turn.text) for turn in conversation.turns)
    needed = tokens + reserve_tokens
    for index, window in enumerate(context_tokens):
        if needed <= window:
            return HistoryResult(tokens=tokens, fits_tier=index + 1)
    reason = Reason(
        code="context_exceeds",
        text=f"history of ~{tokens} tokens exceeds every tier's context window; it will be trimmed",
    )
    return HistoryResult(tokens=tokens, fits_tier=None, reasons=(reason,))
