"""Redis key prefixes of the routing package, kept in one place as arq keeps its own."""

from __future__ import annotations

BREAKER_PREFIX = "tierbot:breaker:"
"""Circuit breakers: `<prefix>{provider:model}` plus its `:probe` and `:cooldown` keys."""
