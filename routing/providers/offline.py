"""The offline provider: local, deterministic, clearly labelled answers that still stream."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from routing.providers.base import ChatRequest, Finished, StreamEvent, TextDelta, Usage

OFFLINE_PREFIX = "[offline]"
"""Every offline answer starts with this, so nobody mistakes it for a model's words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineSpeed:
    """How an offline model streams: seconds to the first word, then words per second."""

    first_token_s: float
    words_per_s: float


SPEEDS: dict[str, OfflineSpeed] = {
    "offline-fast": OfflineSpeed(first_token_s=0.05, words_per_s=120.0),
    "offline-mid": OfflineSpeed(first_token_s=0.2, words_per_s=60.0),
    "offline-frontier": OfflineSpeed(first_token_s=0.5, words_per_s=30.0),
}
_DEFAULT_SPEED = OfflineSpeed(first_token_s=0.1, words_per_s=80.0)
_OPENERS = (
    "Here is what I would say",
    "A short answer",
    "My take",
    "In brief",
)


class OfflineProvider:
    """Answers without any network, so a newcomer can watch routing and escalation work."""

    __slots__ = ("_speed_factor",)

    def __init__(self, *, speed_factor: float = 1.0) -> None:
        self._speed_factor = speed_factor

    @property
    def name(self) -> str:
        """The provider's name in logs, errors and metrics."""
        return "offline"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream a deterministic answer at the model's offline speed, then usage and finish."""
        speed = SPEEDS.get(request.model, _DEFAULT_SPEED)
        words = answer_text(request).split(" ")[: max(request.max_tokens, 1)]
        await asyncio.sleep(speed.first_token_s * self._speed_factor)
        for index, word in enumerate(words):
            if index:
                await asyncio.sleep(self._speed_factor / speed.words_per_s)
            yield TextDelta(text=word if index == 0 else " " + word)
        prompt_chars = sum(len(m.content) for m in request.messages)
        yield Usage(input_tokens=prompt_chars // 4 + 1, output_tokens=len(words))
        yield Finished(reason="stop", native_reason="stop")

    async def aclose(self) -> None:
        """Nothing to release."""


def answer_text(request: ChatRequest) -> str:
    """Return the offline answer to the request's last user message."""
    question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    digest = hashlib.sha256(question.encode("utf-8", "surrogatepass")).digest()
    opener = _OPENERS[digest[0] % len(_OPENERS)]
    gist = " ".join(question.split()[:12]) or "(empty message)"
    return (
        f"{OFFLINE_PREFIX} {opener} ({request.model}): you asked about \u201c{gist}\u201d. "
        "This is tierbot's offline provider, which makes no model calls; set GROQ_API_KEY, "
        "OPENAI_API_KEY or ANTHROPIC_API_KEY for real answers."
    )
