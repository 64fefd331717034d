"""Metrics: a private registry, the names and labels the alerts use, and what each hook counts."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from bots.metrics import Metrics, MetricsRefresher, breaker_value
from bots.queue import QueueStats
from bots.queue_memory import MemoryQueue
from routing.breaker import BreakerConfig, BreakerState, MemoryBreaker
from routing.execution_types import Attempt, Outcome

ALERTS = Path(__file__).parents[2] / "deploy" / "alerts.yaml"


def outcome(*, ok: bool = True) -> Outcome:
    return Outcome(
        ok=ok,
        tier=2 if ok else None,
        provider="anthropic" if ok else None,
        model="mid" if ok else None,
        text="",
        attempts=(
            Attempt(
                tier=0, provider="groq", model="fast", error="breaker_open", detail="", latency_s=0
            ),
            Attempt(
                tier=1,
                provider="openai",
                model="fast",
                error="ProviderTimeout",
                detail="",
                latency_s=5,
            ),
            Attempt(
                tier=2, provider="anthropic", model="mid", error=None, detail="", latency_s=1.2
            ),
        ),
        reasons=(),
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25 if ok else 0.0,
        ttft_s=0.7 if ok else None,
        total_s=1.5,
    )


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_registry_is_private() -> None:
    metrics = Metrics()
    metrics.observe_outcome(outcome())
    assert REGISTRY.get_sample_value("tierbot_cost_usd_total", {"tier": "2"}) is None
    assert Metrics().registry is not metrics.registry


def test_outcome_counts_calls_latency_and_cost() -> None:
    metrics = Metrics()
    metrics.observe_outcome(outcome())
    metrics.observe_outcome(outcome(ok=False))
    calls = "tierbot_provider_requests_total"
    assert value(metrics, calls, provider="anthropic", model="mid", outcome="ok") == 2
    assert value(metrics, calls, provider="openai", model="fast", outcome="ProviderTimeout") == 2
    assert value(metrics, calls, provider="groq", model="fast", outcome="breaker_open") is None
    ttft = "tierbot_first_token_seconds_count"
    assert value(metrics, ttft, tier="2", provider="anthropic") == 1
    assert value(metrics, "tierbot_total_seconds_count", tier="none", provider="none") == 1
    assert value(metrics, "tierbot_cost_usd_total", tier="2") == pytest.approx(0.25)


def test_escalations_are_counted_by_cause() -> None:
    metrics = Metrics()
    metrics.escalated("rule,escalate_failed_answer")
    metrics.escalated("feedback")
    metrics.escalated("feedback")

    assert value(metrics, "tierbot_escalations_total", cause="rule,escalate_failed_answer") == 1
    assert value(metrics, "tierbot_escalations_total", cause="feedback") == 2
    assert value(metrics, "tierbot_escalations_total", cause="policy") is None


def test_queue_stats_breakers_slo_and_counters() -> None:
    metrics = Metrics()
    assert value(metrics, "tierbot_queue_depth") is None
    metrics.refresh_queue(
        QueueStats(depth=7, pending=2, oldest_pending_age_s=61.5, dead=3, dropped_pending=1)
    )
    assert value(metrics, "tierbot_queue_depth") == 7
    assert value(metrics, "tierbot_queue_oldest_pending_age_seconds") == 61.5
    assert value(metrics, "tierbot_queue_dropped_pending_total") == 1
    metrics.refresh_queue(
        QueueStats(depth=0, pending=0, oldest_pending_age_s=None, dead=3, dropped_pending=1)
    )
    assert value(metrics, "tierbot_queue_oldest_pending_age_seconds") == 0
    metrics.observe_breakers(
        [
            BreakerState(key="openai:gpt-4o", status="open"),
            BreakerState(key="groq:x", status="half_open"),
        ]
    )
    assert value(metrics, "tierbot_breaker_state", provider="openai", model="gpt-4o") == 2
    assert value(metrics, "tierbot_breaker_state", provider="groq", model="x") == 1
    metrics.publish_slo([5.0, 10.0], tiers=3)
    assert value(metrics, "tierbot_tier_ttft_slo_seconds", tier="3") == 10.0
    metrics.dead_lettered()
    metrics.duplicate_dropped("telegram")
    assert value(metrics, "tierbot_dead_letters_total") == 1
    assert value(metrics, "tierbot_duplicates_dropped_total", channel="telegram") == 1


@pytest.mark.parametrize(
    ("status", "expected"), [("closed", 0), ("half_open", 1), ("open", 2), ("cooldown", 2)]
)
def test_breaker_values(status: str, expected: int) -> None:
    assert breaker_value(status) == expected  # type: ignore[arg-type]  # literal from the table


def test_every_metric_the_alerts_use_is_exported() -> None:
    metrics = Metrics()
    metrics.observe_outcome(outcome())
    metrics.escalated("rule")
    metrics.refresh_queue(
        QueueStats(depth=1, pending=1, oldest_pending_age_s=1.0, dead=0, dropped_pending=0)
    )
    metrics.observe_breakers([BreakerState(key="openai:m", status="closed")])
    metrics.publish_slo([5.0], tiers=1)
    metrics.dead_lettered()
    metrics.duplicate_dropped("whatsapp")
    exported = metrics.render().decode()
    used = set(re.findall(r"\btierbot_[a-z_]+", ALERTS.read_text()))
    assert used
    for name in used:
        assert re.search(rf"^{name}[{{ ]", exported, re.MULTILINE), name
    labels = {
        "tierbot_provider_requests_total": {"provider", "model", "outcome"},
        "tierbot_first_token_seconds_bucket": {"tier", "provider", "le"},
        "tierbot_tier_ttft_slo_seconds": {"tier"},
        "tierbot_breaker_state": {"provider", "model"},
        "tierbot_cost_usd_total": {"tier"},
        "tierbot_escalations_total": {"cause"},
    }
    for name, expected in labels.items():
        line = re.search(rf"^{name}{{([^}}]*)}}", exported, re.MULTILINE)
        assert line is not None, name
        assert set(re.findall(r'(\w+)="', line.group(1))) == expected, name


async def test_refresher_reads_queue_and_breakers_while_the_app_runs() -> None:
    metrics = Metrics()
    queue = MemoryQueue()
    breaker = MemoryBreaker(config=BreakerConfig(consecutive_failures=1))
    permit = await breaker.allow("openai:top")
    assert permit is not None
    await breaker.failure(permit)
    refresher = MetricsRefresher(
        metrics, queue=queue, breaker=breaker, keys=["openai:top", "groq:fast"], interval_s=0.01
    )
    app = web.Application()
    app.cleanup_ctx.append(refresher)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    async with client:
        for _ in range(100):
            if value(metrics, "tierbot_queue_depth") is not None:
                break
            await asyncio.sleep(0.01)
    assert value(metrics, "tierbot_queue_depth") == 0
    assert value(metrics, "tierbot_breaker_state", provider="openai", model="top") == 2
    assert value(metrics, "tierbot_breaker_state", provider="groq", model="fast") == 0
