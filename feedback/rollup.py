"""Rolls the report's small grouped SQL results up into its lines: tiers, savings, providers."""

from __future__ import annotations

from dataclasses import dataclass

from feedback.percentiles import NONE, Percentiles
from feedback.report_types import (
    CounterfactualPrices,
    MisrouteLine,
    ProviderLine,
    Savings,
    SurfaceLine,
    TierLine,
)

BREAKER_OPEN = "breaker_open"
"""The attempt error of a link skipped because its breaker was open (not a provider call)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Group:
    """Sums over the turns of one (tier, channel, surface, outcome) of the period."""

    tier: int
    channel: str
    surface: str
    outcome: str
    n: int
    cost: float
    tokens_in: int
    tokens_out: int
    n_top: int
    if_top: float
    cost_top: float
    n_mid: int
    if_mid: float
    cost_mid: float


def totals(groups: list[Group]) -> dict[str, int]:
    """Turns per outcome."""
    counts: dict[str, int] = {}
    for g in groups:
        counts[g.outcome] = counts.get(g.outcome, 0) + g.n
    return dict(sorted(counts.items()))


def savings(groups: list[Group], prices: CounterfactualPrices | None) -> Savings:
    """Spend against the top and middle tier, from recorded counterfactuals or from `prices`."""
    cost = sum(g.cost for g in groups)
    if prices is None:
        if_top = sum(g.if_top for g in groups)
        if_mid = sum(g.if_mid for g in groups)
        return Savings(
            basis="recorded",
            cost_usd=cost,
            if_top_usd=if_top,
            if_mid_usd=if_mid,
            saved_vs_top_usd=if_top - sum(g.cost_top for g in groups),
            saved_vs_mid_usd=if_mid - sum(g.cost_mid for g in groups),
            unpriced_top=sum(g.n - g.n_top for g in groups),
            unpriced_mid=sum(g.n - g.n_mid for g in groups),
        )
    tokens_in = sum(g.tokens_in for g in groups)
    tokens_out = sum(g.tokens_out for g in groups)
    if_top = prices.top.cost(tokens_in, tokens_out)
    if_mid = prices.mid.cost(tokens_in, tokens_out)
    return Savings(
        basis="prices",
        cost_usd=cost,
        if_top_usd=if_top,
        if_mid_usd=if_mid,
        saved_vs_top_usd=if_top - cost,
        saved_vs_mid_usd=if_mid - cost,
        unpriced_top=0,
        unpriced_mid=0,
    )


def tier_lines(
    groups: list[Group],
    misrouted: dict[int, int],
    ttft: dict[int, Percentiles],
    total: dict[int, Percentiles],
) -> tuple[TierLine, ...]:
    """One line per tier, cheapest first."""
    requests: dict[int, int] = {}
    cost: dict[int, float] = {}
    for g in groups:
        requests[g.tier] = requests.get(g.tier, 0) + g.n
        cost[g.tier] = cost.get(g.tier, 0.0) + g.cost
    everything = sum(requests.values())
    lines = []
    for tier in sorted(requests):
        n = requests[tier]
        lines.append(
            TierLine(
                tier=tier,
                requests=n,
                share=n / everything,
                cost_usd=cost[tier],
                misrouted=misrouted.get(tier, 0),
                misroute_rate=misrouted.get(tier, 0) / n,
                ttft=ttft.get(tier, NONE),
                total=total.get(tier, NONE),
            )
        )
    return tuple(lines)


def misroute_lines(
    groups: list[Group], per_cause: list[tuple[int, str, int]]
) -> tuple[MisrouteLine, ...]:
    """Misrouted turns per (tier, cause), with their share of the tier's turns."""
    requests: dict[int, int] = {}
    for g in groups:
        requests[g.tier] = requests.get(g.tier, 0) + g.n
    return tuple(
        MisrouteLine(tier=tier, cause=cause, turns=n, rate=n / requests[tier])
        for tier, cause, n in per_cause
    )


def surface_lines(groups: list[Group]) -> tuple[SurfaceLine, ...]:
    """One line per channel and surface, most expensive first."""
    sums: dict[tuple[str, str], tuple[int, float]] = {}
    for g in groups:
        n, cost = sums.get((g.channel, g.surface), (0, 0.0))
        sums[(g.channel, g.surface)] = (n + g.n, cost + g.cost)
    ordered = sorted(sums.items(), key=lambda item: (-item[1][1], item[0]))
    return tuple(
        SurfaceLine(channel=channel, surface=surface, requests=n, cost_usd=cost)
        for (channel, surface), (n, cost) in ordered
    )


def provider_lines(
    calls: list[tuple[str, str, str | None, int]], trips: dict[str, int]
) -> tuple[ProviderLine, ...]:
    """One line per provider model from (provider, model, error, count) and breaker trips."""
    by_model: dict[tuple[str, str], dict[str | None, int]] = {}
    for provider, model, error, n in calls:
        by_model.setdefault((provider, model), {})[error] = n
    for key in trips:
        provider, _, model = key.partition(":")
        by_model.setdefault((provider, model), {})
    lines = []
    for (provider, model), errors in sorted(by_model.items()):
        skipped = errors.get(BREAKER_OPEN, 0)
        failed = {str(e): n for e, n in sorted(errors.items(), key=_error_order) if e}
        failed.pop(BREAKER_OPEN, None)
        made = sum(errors.values()) - skipped
        wrong = sum(failed.values())
        lines.append(
            ProviderLine(
                provider=provider,
                model=model,
                calls=made,
                errors=wrong,
                error_rate=wrong / made if made else 0.0,
                errors_by_class=failed,
                skipped_open=skipped,
                breaker_trips=trips.get(f"{provider}:{model}", 0),
            )
        )
    return tuple(lines)


def _error_order(item: tuple[str | None, int]) -> tuple[int, str]:
    return (-item[1], item[0] or "")
