"""Prometheus metrics of one tierbot process, in a private registry served on the admin listener.

Names and labels match `deploy/alerts.yaml`. Tiers are labelled by their 1-based number, the
same value in `tierbot_first_token_seconds` and `tierbot_tier_ttft_slo_seconds`, so the TTFT
alert can join them `on (tier)`. The queue values come from Redis and are fleet-wide: every
process reports the same numbers, and the last `QueueStats` given is what a scrape sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import assert_never

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bots.errors import StoreUnavailable
from bots.queue import Queue, QueueStats
from routing.breaker import Breaker, BreakerState, BreakerStatus
from routing.execution_types import Outcome

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
NONE_LABEL = "none"
"""Label value when an outcome has no tier or provider (nobody answered)."""


def breaker_value(status: BreakerStatus) -> int:
    """0 closed, 1 half-open, 2 open; a cooldown (a provider's Retry-After) skips the model
    like an open breaker, so it is 2 too."""
    match status:
        case "closed":
            return 0
        case "half_open":
            return 1
        case "open" | "cooldown":
            return 2
        case _:
            assert_never(status)


class _QueueCollector(Collector):
    """The fleet-wide queue values of the last `QueueStats`, read at scrape time."""

    def __init__(self) -> None:
        self.stats: QueueStats | None = None

    def collect(self) -> Iterable[Metric]:
        stats = self.stats
        depth = GaugeMetricFamily(
            "tierbot_queue_depth", "Queued entries not yet acknowledged (fleet-wide)."
        )
        age = GaugeMetricFamily(
            "tierbot_queue_oldest_pending_age_seconds",
            "Age of the oldest pending entry; 0 when nothing is pending (fleet-wide).",
        )
        dropped = CounterMetricFamily(
            "tierbot_queue_dropped_pending",
            "Pending entries found deleted before their acknowledgement (fleet-wide).",
        )
        if stats is not None:
            depth.add_metric([], stats.depth)
            age.add_metric([], stats.oldest_pending_age_s or 0.0)
            dropped.add_metric([], stats.dropped_pending)
        return [depth, age, dropped]


def _latency(name: str, documentation: str, registry: CollectorRegistry) -> Histogram:
    return Histogram(
        name, documentation, ["tier", "provider"], buckets=LATENCY_BUCKETS, registry=registry
    )


class Metrics:
    """Every tierbot metric, registered in a `CollectorRegistry` of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            "tierbot_provider_requests",
            "Provider calls by outcome: ok or the error class.",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self._first_token = _latency("tierbot_first_token_seconds", "Time to first token.", r)
        self._total = _latency("tierbot_total_seconds", "Time to the end of an answer.", r)
        self._slo = Gauge(
            "tierbot_tier_ttft_slo_seconds",
            "Time-to-first-token SLO per tier.",
            ["tier"],
            registry=r,
        )
        self._dead = Counter(
            "tierbot_dead_letters",
            "Messages this process moved to the dead-letter list.",
            [],
            registry=r,
        )
        self._duplicates = Counter(
            "tierbot_duplicates_dropped",
            "Deliveries refused as duplicates.",
            ["channel"],
            registry=r,
        )
        self._cost = Counter("tierbot_cost_usd", "LLM spend in USD.", ["tier"], registry=r)
        self._escalations = Counter(
            "tierbot_escalations", "Turns routed above their base tier.", ["cause"], registry=r
        )
        self._breaker = Gauge(
            "tierbot_breaker_state",
            "Breaker state: 0 closed, 1 half-open, 2 open.",
            ["provider", "model"],
            registry=r,
        )
        self._queue = _QueueCollector()
        r.register(self._queue)

    def render(self) -> bytes:
        """The registry in Prometheus' text format (serve with `CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def publish_slo(self, first_token_s: Sequence[float], *, tiers: int) -> None:
        """Publish each tier's TTFT SLO; the last value covers the higher tiers."""
        for tier in range(1, tiers + 1):
            self._slo.labels(tier=str(tier)).set(first_token_s[min(tier, len(first_token_s)) - 1])

    def observe_outcome(self, outcome: Outcome) -> None:
        """Count the provider calls of a request, its latencies and its cost."""
        for attempt in outcome.attempts:
            if attempt.tier == 0:
                continue  # a link skipped without a call (open breaker) is no request
            result = "ok" if attempt.error is None else attempt.error
            self._requests.labels(attempt.provider, attempt.model, result).inc()
        tier = NONE_LABEL if outcome.tier is None else str(outcome.tier)
        provider = outcome.provider or NONE_LABEL
        if outcome.ttft_s is not None:
            self._first_token.labels(tier, provider).observe(outcome.ttft_s)
        self._total.labels(tier, provider).observe(outcome.total_s)
        if outcome.cost_usd > 0:
            self._cost.labels(tier).inc(outcome.cost_usd)

    def escalated(self, cause: str) -> None:
        """Count a turn routed above its base tier (`bots.pipeline.escalation_cause`)."""
        self._escalations.labels(cause).inc()

    def dead_lettered(self, count: int = 1) -> None:
        """Count messages this process moved to the dead-letter list."""
        self._dead.inc(count)

    def duplicate_dropped(self, channel: str) -> None:
        """Count a webhook delivery refused as a duplicate."""
        self._duplicates.labels(channel).inc()

    def refresh_queue(self, stats: QueueStats) -> None:
        """Keep the latest fleet-wide queue stats for the next scrape."""
        self._queue.stats = stats

    def observe_breakers(self, states: Iterable[BreakerState]) -> None:
        """Set the state of each breaker (keyed `provider:model`)."""
        for state in states:
            provider, _, model = state.key.partition(":")
            self._breaker.labels(provider, model).set(breaker_value(state.status))


class MetricsRefresher:
    """A `cleanup_ctx` entry: every `interval_s`, read the queue's stats and the breakers of
    `keys` (`provider:model`) into `metrics`, until the app stops."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        queue: Queue,
        breaker: Breaker,
        keys: Sequence[str],
        interval_s: float = 15.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._metrics = metrics
        self._queue = queue
        self._breaker = breaker
        self._keys = tuple(dict.fromkeys(keys))
        self._interval_s = interval_s
        self._timeout_s = timeout_s

    async def refresh(self) -> None:
        """Read once; a queue that does not answer keeps the previous values (and logs)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                self._metrics.refresh_queue(await self._queue.stats())
        except (StoreUnavailable, TimeoutError) as exc:
            logger.warning("metrics: queue stats unavailable: %s", type(exc).__name__)
        states = [await self._breaker.state(key) for key in self._keys]
        self._metrics.observe_breakers(states)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Refresh in a task of its own while the block runs."""
        task = asyncio.create_task(self._run(), name="metrics-refresher")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # task boundary: the next round tries again
                logger.exception("metrics refresh failed")
            await asyncio.sleep(self._interval_s)

    async def __call__(self, _app: web.Application) -> AsyncIterator[None]:
        async with self.running():
            yield
