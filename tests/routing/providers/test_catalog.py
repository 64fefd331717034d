"""The default model catalog: lookups, snapshot names, overrides and call cost."""

from __future__ import annotations

import pytest

from routing.providers import DEFAULT_CATALOG, ModelSpec, Usage, lookup


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("llama-3.1-8b-instant", "llama-3.1-8b-instant"),
    ],
)
def test_lookup_finds_a_model_or_its_snapshot(model: str, base: str) -> None:
    assert lookup(model) == DEFAULT_CATALOG[base]


def test_an_exact_entry_beats_the_snapshot_fallback() -> None:
    assert lookup("gpt-4o-2024-05-13") != lookup("gpt-4o")


@pytest.mark.parametrize("model", ["gpt-5-pro", "mystery-model", ""])
def test_unknown_models_are_not_guessed(model: str) -> None:
    assert lookup(model) is None


def test_overrides_win_over_the_defaults() -> None:
    mine = ModelSpec(vendor="openai", input_per_mtok=1.0, output_per_mtok=2.0, context_window=1000)

    assert lookup("gpt-4o-mini-2024-07-18", {"gpt-4o-mini": mine}) == mine
    assert lookup("gpt-4o", {"gpt-4o-mini": mine}) == DEFAULT_CATALOG["gpt-4o"]


def test_cost_is_list_price_per_million_tokens() -> None:
    spec = DEFAULT_CATALOG["llama-3.1-8b-instant"]

    cost = spec.cost(Usage(input_tokens=1_000_000, output_tokens=500_000))

    assert cost == pytest.approx(0.05 + 0.04)


def test_the_cheap_tier_is_cheaper_than_the_frontier() -> None:
    usage = Usage(input_tokens=2000, output_tokens=500)
    costs = [
        DEFAULT_CATALOG[m].cost(usage)
        for m in ("llama-3.1-8b-instant", "gpt-4o-mini", "claude-haiku-4-5", "claude-opus-4-1")
    ]

    assert costs == sorted(costs)
