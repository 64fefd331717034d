"""The period report on a small dataset whose every figure is worked out by hand below."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest

from feedback.errors import QueryError
from feedback.percentiles import NONE, Percentiles
from feedback.report import build_report
from feedback.report_types import (
    CounterfactualPrices,
    EscalationLine,
    MisrouteLine,
    ModelPrice,
    ProviderLine,
    Report,
    Savings,
    SpenderLine,
    SurfaceLine,
    parse_prices,
)
from feedback.store import FeedbackStore
from feedback.types import AttemptRecord, EventKind, EventRecord, TurnRecord
from tests.feedback.records import T0, at, make_event, make_turn

pytestmark = pytest.mark.timeout(30)

LLAMA = ("groq", "llama-3.1-8b-instant")
MINI = ("openai", "gpt-4o-mini")
SONNET = ("anthropic", "claude-sonnet-4")
BEFORE = T0 - timedelta(days=2)


def _try(model: tuple[str, str], error: str | None = None, tier: int = 1) -> AttemptRecord:
    return AttemptRecord(provider=model[0], model=model[1], error=error, latency_s=0.5, tier=tier)


def _turns() -> list[TurnRecord]:
    # id  tier channel/surface   user cost    if_top if_mid ttft total outcome
    # a   1    telegram/private  U1   0.001   0.010  0.004  0.2  1.0   ok
    # b   1    telegram/private  U1   0.002   0.020  0.008  0.4  2.0   ok
    # c   2    whatsapp/private  U2   0.004   0.012  0.004  0.6  3.0   failed
    # d   3    api/api           U3   0.010   0.010  -      -    4.0   stopped
    # e   1    telegram/group    U2   0.0005  -      -      1.0  5.0   ok
    # z   3    (two days before the period)                 cost 1.0
    return [
        make_turn("a", when=at(1), user="U1", cost=0.001, cost_if_top=0.010, cost_if_mid=0.004,
                  ttft=0.2, total=1.0, attempts=(_try(LLAMA),)),
        make_turn("b", when=at(2), user="U1", cost=0.002, cost_if_top=0.020, cost_if_mid=0.008,
                  ttft=0.4, total=2.0, attempts=(_try(LLAMA, "ProviderTimeout"), _try(LLAMA))),
        make_turn("c", when=at(3), user="U2", tier=2, channel="whatsapp", cost=0.004,
                  cost_if_top=0.012, cost_if_mid=0.004, ttft=0.6, total=3.0, outcome="failed",
                  attempts=(_try(MINI, "breaker_open", 0), _try(MINI, "ProviderUnavailable", 2))),
        make_turn("d", when=at(4), user="U3", tier=3, channel="api", surface="api", cost=0.010,
                  cost_if_top=0.010, cost_if_mid=None, ttft=None, total=4.0, outcome="stopped",
                  attempts=(_try(SONNET, tier=3),)),
        make_turn("e", when=at(5), user="U2", surface="group", cost=0.0005, cost_if_top=None,
                  cost_if_mid=None, ttft=1.0, total=5.0, attempts=(_try(LLAMA),)),
        make_turn("z", when=BEFORE, user="U4", tier=3, cost=1.0, attempts=(_try(SONNET),)),
    ]  # fmt: skip


def _events() -> list[EventRecord]:
    return [
        make_event(EventKind.MISROUTE, turn_id="b", related="a", cause="frustration", when=at(2)),
        make_event(EventKind.MISROUTE, turn_id="b", related="a", cause="rephrase", when=at(2)),
        make_event(EventKind.MISROUTE, turn_id="d", related="c", cause="rating_down", when=at(4)),
        make_event(EventKind.MISROUTE, related="z", cause="frustration", when=BEFORE),
        make_event(EventKind.ESCALATION, turn_id="c", cause="frustration", when=at(3)),
        make_event(EventKind.ESCALATION, turn_id="d", cause="complexity", when=at(4)),
        make_event(EventKind.ESCALATION, turn_id="b", cause="frustration", when=at(2)),
        make_event(EventKind.RATING, turn_id="a", rating="down", when=at(2)),
        make_event(EventKind.RATING, turn_id="c", rating="stronger", when=at(4)),
        make_event(EventKind.BREAKER_TRIP, cause="openai:gpt-4o-mini", when=at(3), user=None),
        make_event(EventKind.BREAKER_TRIP, cause="openai:gpt-4o-mini", when=BEFORE, user=None),
    ]


@pytest.fixture
async def loaded(store: FeedbackStore) -> FeedbackStore:
    await store.write([*_turns(), *_events()])
    return store


async def _period_report(
    store: FeedbackStore, prices: CounterfactualPrices | None = None, top: int = 10
) -> Report:
    until = T0 + timedelta(hours=1)
    return await build_report(store, since=T0, until=until, prices=prices, top=top)


async def test_volume_outcomes_and_cost(loaded: FeedbackStore) -> None:
    report = await _period_report(loaded)
    assert (report.since, report.until) == (T0, T0 + timedelta(hours=1))
    assert report.requests == 5
    assert report.outcomes == {"failed": 1, "ok": 3, "stopped": 1}
    assert r(report.cost_usd) == 0.0175
    assert report.events == {"breaker_trip": 1, "escalation": 3, "misroute": 3, "rating": 2}


def r(value: object) -> object:
    """`value` with dataclasses as dicts and every float rounded to 9 places."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return r(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: r(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [r(v) for v in value]
    return round(value, 9) if isinstance(value, float) else value


async def test_savings_from_the_prices_recorded_with_each_turn(loaded: FeedbackStore) -> None:
    # top: a b c d priced: 0.010+0.020+0.012+0.010 = 0.052 against 0.017 spent on them; e unpriced
    # mid: a b c priced:   0.004+0.008+0.004 = 0.016 against 0.007 spent on them; d e unpriced
    savings = (await _period_report(loaded)).savings
    assert r(savings) == r(
        Savings(
            basis="recorded",
            cost_usd=0.0175,
            if_top_usd=0.052,
            if_mid_usd=0.016,
            saved_vs_top_usd=0.035,
            saved_vs_mid_usd=0.009,
            unpriced_top=1,
            unpriced_mid=2,
        )
    )


async def test_savings_at_given_prices_price_every_turns_tokens(loaded: FeedbackStore) -> None:
    # 5 turns x (400 in, 100 out) = 2000 in, 500 out.
    # top at 3/15 per Mtok: 0.006 + 0.0075 = 0.0135; mid at 0.5/1.5: 0.001 + 0.00075 = 0.00175
    prices = parse_prices(
        '{"top": {"input_per_mtok": 3, "output_per_mtok": 15},'
        ' "mid": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}}'
    )
    assert prices == CounterfactualPrices(
        top=ModelPrice(input_per_mtok=3, output_per_mtok=15),
        mid=ModelPrice(input_per_mtok=0.5, output_per_mtok=1.5),
    )
    savings = (await _period_report(loaded, prices=prices)).savings
    assert r(savings) == r(
        Savings(
            basis="prices",
            cost_usd=0.0175,
            if_top_usd=0.0135,
            if_mid_usd=0.00175,
            saved_vs_top_usd=-0.004,
            saved_vs_mid_usd=-0.01575,
            unpriced_top=0,
            unpriced_mid=0,
        )
    )


async def test_tier_mix_misroute_rate_and_latency_percentiles(loaded: FeedbackStore) -> None:
    # tier 1 ttft [0.2, 0.4, 1.0]: p50 0.4, p95 at 1.9 -> 0.4 + 0.9 * 0.6, p99 at 1.98
    # tier 1 total [1, 2, 5]:       p50 2,   p95 2 + 0.9 * 3,              p99 2 + 0.98 * 3
    tiers = (await _period_report(loaded)).tiers
    assert [(t.tier, t.requests, t.share, t.misrouted) for t in tiers] == [
        (1, 3, 0.6, 1),
        (2, 1, 0.2, 1),
        (3, 1, 0.2, 0),
    ]
    assert r([t.cost_usd for t in tiers]) == [0.0035, 0.004, 0.010]
    assert r([t.misroute_rate for t in tiers]) == r([1 / 3, 1.0, 0.0])
    assert r(tiers[0].ttft) == r(Percentiles(p50=0.4, p95=0.94, p99=0.988))
    assert r(tiers[0].total) == r(Percentiles(p50=2.0, p95=4.7, p99=4.94))
    assert tiers[1].ttft == Percentiles(p50=0.6, p95=0.6, p99=0.6)
    assert (tiers[2].ttft, tiers[2].total) == (NONE, Percentiles(p50=4.0, p95=4.0, p99=4.0))


async def test_misroutes_by_tier_and_cause(loaded: FeedbackStore) -> None:
    assert r((await _period_report(loaded)).misroutes) == r(
        (
            MisrouteLine(tier=1, cause="frustration", turns=1, rate=1 / 3),
            MisrouteLine(tier=1, cause="rephrase", turns=1, rate=1 / 3),
            MisrouteLine(tier=2, cause="rating_down", turns=1, rate=1.0),
        )
    )


async def test_escalation_cost_by_cause(loaded: FeedbackStore) -> None:
    assert r((await _period_report(loaded)).escalations) == r(
        (
            EscalationLine(cause="frustration", escalations=2, cost_usd=0.006),
            EscalationLine(cause="complexity", escalations=1, cost_usd=0.010),
        )
    )


async def test_provider_error_rates_and_breaker_trips(loaded: FeedbackStore) -> None:
    assert (await _period_report(loaded)).providers == (
        ProviderLine(provider="anthropic", model="claude-sonnet-4", calls=1, errors=0,
                     error_rate=0.0, errors_by_class={}, skipped_open=0, breaker_trips=0),
        ProviderLine(provider="groq", model="llama-3.1-8b-instant", calls=4, errors=1,
                     error_rate=0.25, errors_by_class={"ProviderTimeout": 1}, skipped_open=0,
                     breaker_trips=0),
        ProviderLine(provider="openai", model="gpt-4o-mini", calls=1, errors=1, error_rate=1.0,
                     errors_by_class={"ProviderUnavailable": 1}, skipped_open=1,
                     breaker_trips=1),
    )  # fmt: skip


async def test_cost_per_surface_and_per_user(loaded: FeedbackStore) -> None:
    report = await _period_report(loaded, top=2)
    assert r(report.surfaces) == r(
        (
            SurfaceLine(channel="api", surface="api", requests=1, cost_usd=0.010),
            SurfaceLine(channel="whatsapp", surface="private", requests=1, cost_usd=0.004),
            SurfaceLine(channel="telegram", surface="private", requests=2, cost_usd=0.003),
            SurfaceLine(channel="telegram", surface="group", requests=1, cost_usd=0.0005),
        )
    )
    assert report.users == 3
    assert r(report.cost_per_user_usd) == r(0.0175 / 3)
    assert r(report.top_spenders) == r(
        (
            SpenderLine(user_hash=loaded.hash_id("U3"), requests=1, cost_usd=0.010),
            SpenderLine(user_hash=loaded.hash_id("U2"), requests=2, cost_usd=0.0045),
        )
    )


async def test_an_open_period_covers_everything(loaded: FeedbackStore) -> None:
    report = await build_report(loaded, since=None, until=None)
    assert r((report.requests, report.cost_usd)) == [6, 1.0175]
    assert report.events["breaker_trip"] == 2
    assert [(m.tier, m.cause) for m in report.misroutes][-1] == (3, "frustration")


async def test_an_empty_period_reports_zeros(store: FeedbackStore) -> None:
    report = await build_report(store, since=T0, until=T0, top=0)
    assert (report.requests, report.cost_usd, report.users) == (0, 0.0, 0)
    assert (report.tiers, report.misroutes, report.top_spenders) == ((), (), ())
    assert report.savings.saved_vs_top_usd == 0.0
    assert report.cost_per_user_usd == 0.0


NEGATIVE = (
    '{"top": {"input_per_mtok": -1, "output_per_mtok": 2},'
    ' "mid": {"input_per_mtok": 1, "output_per_mtok": 2}}'
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "Invalid JSON"),
        ('{"top": {"input_per_mtok": 1, "output_per_mtok": 2}}', "mid: Field required"),
        (NEGATIVE, "top.input_per_mtok: Input should be greater than or equal"),
    ],
)
def test_bad_prices_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(QueryError, match=re.escape(f"--prices: {says}")):
        parse_prices(text)
