"""Default list prices and context windows of well-known models (defaults, overridable)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from routing.providers.base import Usage

logger = logging.getLogger(__name__)

Vendor = Literal["groq", "openai", "anthropic"]

_SNAPSHOT = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A model's vendor, list prices in USD per million input/output tokens, and context window."""

    vendor: Vendor
    input_per_mtok: float
    output_per_mtok: float
    context_window: int

    def cost(self, usage: Usage) -> float:
        """Return the list price in USD of a call that used `usage`."""
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / 1_000_000


def _spec(vendor: Vendor, price_in: float, price_out: float, window: int) -> ModelSpec:
    return ModelSpec(
        vendor=vendor, input_per_mtok=price_in, output_per_mtok=price_out, context_window=window
    )


# DEFAULTS, OVERRIDABLE: public list prices (USD per million tokens, standard tier, no batch or
# cache discounts) and context windows in tokens as published by each vendor. Prices change;
# the composition root passes `overrides` from settings, which win over these.
DEFAULT_CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {
        # Groq-hosted Llama (cheap tier).
        "llama-3.1-8b-instant": _spec("groq", 0.05, 0.08, 131_072),
        "llama-3.3-70b-versatile": _spec("groq", 0.59, 0.79, 131_072),
        # OpenAI.
        "gpt-4o-mini": _spec("openai", 0.15, 0.60, 128_000),
        "gpt-4o": _spec("openai", 2.50, 10.00, 128_000),
        "gpt-4o-2024-05-13": _spec("openai", 5.00, 15.00, 128_000),
        "gpt-4.1-nano": _spec("openai", 0.10, 0.40, 1_047_576),
        "gpt-4.1-mini": _spec("openai", 0.40, 1.60, 1_047_576),
        "gpt-4.1": _spec("openai", 2.00, 8.00, 1_047_576),
        "gpt-5-nano": _spec("openai", 0.05, 0.40, 400_000),
        "gpt-5-mini": _spec("openai", 0.25, 2.00, 400_000),
        "gpt-5": _spec("openai", 1.25, 10.00, 400_000),
        # Anthropic.
        "claude-3-haiku": _spec("anthropic", 0.25, 1.25, 200_000),
        "claude-3-5-haiku": _spec("anthropic", 0.80, 4.00, 200_000),
        "claude-haiku-4-5": _spec("anthropic", 1.00, 5.00, 200_000),
        "claude-sonnet-4": _spec("anthropic", 3.00, 15.00, 200_000),
        "claude-sonnet-4-0": _spec("anthropic", 3.00, 15.00, 200_000),
        "claude-sonnet-4-5": _spec("anthropic", 3.00, 15.00, 200_000),
        "claude-opus-4": _spec("anthropic", 15.00, 75.00, 200_000),
        "claude-opus-4-0": _spec("anthropic", 15.00, 75.00, 200_000),
        "claude-opus-4-1": _spec("anthropic", 15.00, 75.00, 200_000),
        "claude-opus-4-5": _spec("anthropic", 5.00, 25.00, 200_000),
    }
)


def lookup(model: str, overrides: Mapping[str, ModelSpec] | None = None) -> ModelSpec | None:
    """Return the spec for `model` from `overrides`, else from the defaults; None if unknown.

    A dated snapshot or `-latest` alias (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-20250514`,
    `claude-3-5-haiku-latest`) falls back to its base name when it has no entry of its own.
    Nothing else is guessed: `gpt-5-pro` is not priced as `gpt-5`.
    """
    for table in (overrides or {}, DEFAULT_CATALOG):
        for name in (model, _SNAPSHOT.sub("", model)):
            if name in table:
                return table[name]
    logger.debug("no catalog entry model=%s", model)
    return None
