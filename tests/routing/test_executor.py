"""The executor through the real SDKs against loopback fakes: fallbacks, deadlines, breakers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from routing.breaker import BreakerConfig, MemoryBreaker
from routing.budget import RetryBudget
from routing.execution_types import Deadlines, Delta, ExecEvent, Job, Link, Outcome, Restart
from routing.executor import CONTINUE_PROMPT, Executor
from routing.providers import ChatMessage, LLMProvider, ModelSpec, ProviderSettings
from routing.providers.anthropic_messages import AnthropicProvider
from routing.providers.groq_chat import GroqProvider
from routing.providers.openai_compat import OpenAICompatProvider
from tests.fakes.llm import Behaviour, FakeLLM

KEY = "sk-exec-test-4f1d2c"
ANSWER = "Turn it off and on again, then wait ten seconds."
BACKUP = "Hold the reset button for ten seconds until the light blinks."
PRICE = ModelSpec(vendor="groq", input_per_mtok=1.0, output_per_mtok=2.0, context_window=8000)
MESSAGES = (ChatMessage(role="user", content="How do I reset my router?"),)


@dataclass(slots=True)
class FakeClock:
    """A clock the breaker reads; tests move it instead of sleeping."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class Harness:
    """A FakeLLM, one adapter per vendor pointed at it, and executor builders."""

    fake: FakeLLM
    providers: dict[str, LLMProvider]
    clock: FakeClock = field(default_factory=FakeClock)
    breaker: MemoryBreaker = field(init=False)
    budget: RetryBudget = field(init=False)

    def __post_init__(self) -> None:
        self.breaker = MemoryBreaker(config=BreakerConfig(), clock=self.clock)
        self.budget = RetryBudget(clock=self.clock)

    def executor(
        self,
        *chains: tuple[str, ...],
        first_token_s: float = 5.0,
        inter_token_s: float = 5.0,
        total_s: float = 30.0,
    ) -> Executor:
        links = tuple(
            tuple(
                Link(provider=text.split(":")[0], model=text.split(":")[1], spec=PRICE)
                for text in chain
            )
            for chain in chains
        )
        return Executor(
            chains=links,
            providers=self.providers,
            breaker=self.breaker,
            budget=self.budget,
            deadlines=Deadlines(
                first_token_s=(first_token_s,), inter_token_s=inter_token_s, total_s=total_s
            ),
        )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with FakeLLM(api_key=KEY) as fake:

        def settings(name: str, url: str) -> ProviderSettings:
            return ProviderSettings(name=name, base_url=url, api_key=SecretStr(KEY))

        providers: dict[str, LLMProvider] = {
            "openai": OpenAICompatProvider(settings("openai", fake.openai_url)),
            "anthropic": AnthropicProvider(settings("anthropic", fake.url)),
            "groq": GroqProvider(settings("groq", fake.url)),
        }
        yield Harness(fake=fake, providers=providers)
        for provider in providers.values():
            await provider.aclose()


def job(tier: int = 1, max_tier: int = 3, **changes: bool | int) -> Job:
    return Job(messages=MESSAGES, tier=tier, max_tier=max_tier, **changes)  # type: ignore[arg-type]  # test-only shorthand for the few bool/int knobs


async def run(executor: Executor, the_job: Job) -> tuple[list[ExecEvent], Outcome]:
    events = [event async for event in executor.run(the_job)]
    outcome = events[-1]
    assert isinstance(outcome, Outcome)
    assert sum(isinstance(e, Outcome) for e in events) == 1
    return events, outcome


def shown(events: list[ExecEvent]) -> str:
    """What a channel that honours Restart shows at the end."""
    text = ""
    for event in events:
        if isinstance(event, Restart):
            text = ""
        elif isinstance(event, Delta):
            text += event.text
    return text


def errors(outcome: Outcome) -> list[tuple[str, str | None]]:
    return [(a.model, a.error) for a in outcome.attempts]


async def test_the_first_link_answers_with_tokens_cost_and_timings(harness: Harness) -> None:
    harness.fake.script("fast-a", Behaviour(text=ANSWER))
    events, outcome = await run(harness.executor(("groq:fast-a", "openai:fast-b")), job())
    assert shown(events) == ANSWER == outcome.text
    assert (outcome.ok, outcome.tier, outcome.provider, outcome.model) == (
        True,
        1,
        "groq",
        "fast-a",
    )
    assert outcome.input_tokens > 0
    assert outcome.output_tokens == len(ANSWER.split())
    expected = (outcome.input_tokens * 1.0 + outcome.output_tokens * 2.0) / 1e6
    assert outcome.cost_usd == pytest.approx(expected)
    assert outcome.ttft_s is not None
    assert 0 < outcome.ttft_s <= outcome.total_s
    assert errors(outcome) == [("fast-a", None)]


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (Behaviour(status=500), "ProviderUnavailable"),
        (Behaviour(status=503), "ProviderUnavailable"),
        (Behaviour(text=""), "EmptyAnswer"),
        (Behaviour(malformed_after=0), "ProviderBadResponse"),
    ],
)
async def test_a_failure_before_any_text_falls_back_inside_the_tier(
    harness: Harness, behaviour: Behaviour, error: str
) -> None:
    harness.fake.script("fast-a", behaviour)
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    events, outcome = await run(harness.executor(("groq:fast-a", "openai:fast-b")), job())
    assert not any(isinstance(e, Restart) for e in events)
    assert shown(events) == BACKUP == outcome.text
    assert errors(outcome) == [("fast-a", error), ("fast-b", None)]


@pytest.mark.parametrize("fault", ["cut_after", "stall_after", "malformed_after"])
async def test_a_mid_stream_failure_restarts_so_the_user_sees_one_answer(
    harness: Harness, fault: str
) -> None:
    harness.fake.script("fast-a", Behaviour(text=ANSWER, **{fault: 3}))  # type: ignore[arg-type]  # the fault knob under test
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a", "anthropic:fast-b"), inter_token_s=0.3)
    events, outcome = await run(executor, job())
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("Restart") == 1
    assert kinds.index("Restart") == 3  # after the three deltas the user saw
    assert shown(events) == BACKUP == outcome.text
    assert outcome.model == "fast-b"


async def test_api_clients_get_a_continuation_instead_of_a_restart(harness: Harness) -> None:
    harness.fake.script("fast-a", Behaviour(text=ANSWER, cut_after=3))
    harness.fake.script("fast-b", Behaviour(text="ten seconds."))
    events, outcome = await run(
        harness.executor(("groq:fast-a", "openai:fast-b")), job(continuation=True)
    )
    assert not any(isinstance(e, Restart) for e in events)
    streamed = "".join(e.text for e in events if isinstance(e, Delta))
    assert streamed == "Turn it off ten seconds." == outcome.text
    sent = harness.fake.last("fast-b").body["messages"]
    assert isinstance(sent, list)
    assert sent[-2:] == [
        {"role": "assistant", "content": "Turn it off "},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


@pytest.mark.parametrize(
    ("behaviour", "limit", "which"),
    [
        (Behaviour(hang="before_first_token"), "first", "first token"),
        (Behaviour(text=ANSWER, stall_after=2), "inter", "next token"),
        (Behaviour(text=ANSWER, tokens_per_second=4.0), "total", "whole answer"),
    ],
)
async def test_deadlines_fire_within_ten_percent_of_their_value(
    harness: Harness, behaviour: Behaviour, limit: str, which: str
) -> None:
    harness.fake.script("slow", behaviour)
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    values = {"first_token_s": 5.0, "inter_token_s": 5.0, "total_s": 30.0}
    key = {"first": "first_token_s", "inter": "inter_token_s", "total": "total_s"}[limit]
    values[key] = 0.8
    executor = harness.executor(("groq:slow", "openai:fast-b"), **values)
    _, outcome = await run(executor, job())
    failed = outcome.attempts[0]
    assert failed.error == "ProviderTimeout"
    assert which in failed.detail
    if limit == "first":
        assert 0.8 <= failed.latency_s <= 0.88
    elif limit == "total":
        assert 0.8 <= failed.latency_s <= 0.88
        assert outcome.ok is False  # the total deadline leaves no time for a fallback
        return
    assert outcome.text == BACKUP


async def test_a_stall_measured_from_the_last_token(harness: Harness) -> None:
    harness.fake.script("slow", Behaviour(text=ANSWER, stall_after=2))
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    started = time.monotonic()
    _, outcome = await run(
        harness.executor(("groq:slow", "openai:fast-b"), inter_token_s=0.5), job()
    )
    stalled = outcome.attempts[0]
    assert stalled.ttft_s is not None
    assert 0.5 <= stalled.latency_s - stalled.ttft_s <= 0.55 + 0.05
    assert time.monotonic() - started < 2.0


async def test_a_rate_limit_cools_the_model_down_without_counting_as_a_failure(
    harness: Harness,
) -> None:
    harness.fake.script("fast-a", Behaviour(status=429, retry_after="7"))
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a", "openai:fast-b"))
    _, outcome = await run(executor, job())
    assert errors(outcome) == [("fast-a", "ProviderRateLimited"), ("fast-b", None)]
    state = await harness.breaker.state("groq:fast-a")
    assert (state.status, state.until, state.consecutive_failures) == ("cooldown", 1007.0, 0)
    _, again = await run(executor, job())
    assert errors(again) == [("fast-a", "breaker_open"), ("fast-b", None)]
    assert harness.fake.count("fast-a") == 1
    harness.clock.now += 7.5
    harness.fake.script("fast-a", Behaviour(text=ANSWER))
    _, later = await run(executor, job())
    assert later.model == "fast-a"


async def test_a_configuration_error_is_logged_loudly_skipped_and_never_trips(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.fake.script("fast-a", Behaviour(status=401))
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a", "openai:fast-b"))
    _, outcome = await run(executor, job())
    assert errors(outcome) == [("fast-a", "ProviderConfigError"), ("fast-b", None)]
    for _ in range(6):
        _, outcome = await run(executor, job())
        assert errors(outcome) == [("fast-a", "breaker_open"), ("fast-b", None)]
    state = await harness.breaker.state("groq:fast-a")
    assert (state.status, state.consecutive_failures, state.trips) == ("cooldown", 0, 0)
    errors_logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors_logged) == 1
    assert "groq:fast-a" in errors_logged[0].getMessage()
    assert KEY not in caplog.text
    assert harness.fake.count("fast-a") == 1


async def test_the_breaker_trips_after_five_failures_and_recovers_with_one_probe(
    harness: Harness,
) -> None:
    harness.fake.script("fast-a", Behaviour(status=500))
    harness.fake.script("fast-b", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a", "openai:fast-b"))
    for _ in range(5):
        await run(executor, job())
    _, skipped = await run(executor, job())
    assert errors(skipped) == [("fast-a", "breaker_open"), ("fast-b", None)]
    assert harness.fake.count("fast-a") == 5
    harness.clock.now += 31
    harness.fake.script("fast-a", Behaviour(text=ANSWER))
    _, probe = await run(executor, job())
    assert probe.model == "fast-a"
    assert (await harness.breaker.state("groq:fast-a")).status == "closed"
    assert harness.fake.count("fast-a") == 6


async def test_an_exhausted_tier_promotes_but_never_above_the_entitlement(
    harness: Harness,
) -> None:
    harness.fake.script("fast-a", Behaviour(status=503))
    harness.fake.script("mid-a", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a",), ("anthropic:mid-a",), ("openai:top",))
    _, promoted = await run(executor, job(max_tier=2))
    assert (promoted.ok, promoted.tier, promoted.model) == (True, 2, "mid-a")
    assert [r.code for r in promoted.reasons] == ["tier_promoted"]
    _, capped = await run(executor, job(max_tier=1))
    assert capped.ok is False
    assert [r.code for r in capped.reasons] == ["no_answer"]
    assert harness.fake.count("mid-a") == 1
    assert harness.fake.count("top") == 0


async def test_a_non_answer_on_a_lower_tier_is_retried_one_tier_up(harness: Harness) -> None:
    harness.fake.script("fast-a", Behaviour(text="I'm sorry, but I can't help with that."))
    harness.fake.script("mid-a", Behaviour(text=BACKUP))
    executor = harness.executor(("groq:fast-a",), ("anthropic:mid-a",))
    events, outcome = await run(executor, job(max_tier=2))
    assert shown(events) == BACKUP
    assert (outcome.tier, [r.code for r in outcome.reasons]) == (2, ["non_answer", "tier_promoted"])
    _, kept = await run(executor, job(max_tier=2, retry_non_answers=False))
    assert kept.tier == 1


async def test_attempts_stop_at_the_per_request_cap(harness: Harness) -> None:
    for model in ("a", "b", "c", "d"):
        harness.fake.script(model, Behaviour(status=503))
    executor = harness.executor(("groq:a", "openai:b", "anthropic:c", "openai:d"))
    _, outcome = await run(executor, job(max_tier=1))
    assert [a.model for a in outcome.attempts] == ["a", "b", "c"]
    assert [r.code for r in outcome.reasons] == ["attempts_exhausted", "no_answer"]


async def test_the_retry_budget_caps_calls_when_every_provider_fails(harness: Harness) -> None:
    harness.fake.script("a", Behaviour(status=503))
    harness.fake.script("b", Behaviour(status=503))
    harness.breaker = MemoryBreaker(
        config=BreakerConfig(consecutive_failures=10_000, min_calls=10_000), clock=harness.clock
    )
    executor = harness.executor(("groq:a", "openai:b"))
    requests = 50
    for _ in range(requests):
        _, outcome = await run(executor, job(max_tier=1))
        assert outcome.ok is False
    calls = harness.fake.count("a") + harness.fake.count("b")
    assert calls <= 1.2 * requests
    assert calls >= requests + 3


Cancel = Callable[[], None]


async def test_abandoning_the_stream_closes_the_provider_call(harness: Harness) -> None:
    harness.fake.script("slow", Behaviour(text=ANSWER, tokens_per_second=5.0))
    stream = harness.executor(("groq:slow",)).run(job())
    first = await anext(stream)
    assert first == Delta(text="Turn ")
    await stream.aclose()
    await harness.fake.disconnected("slow")
    assert harness.fake.disconnects("slow") == 1


async def test_the_outcome_says_when_the_output_cap_cut_the_answer(harness: Harness) -> None:
    harness.fake.script("fast-a", Behaviour(text=ANSWER, finish_reason="length"))
    _, outcome = await run(harness.executor(("openai:fast-a",)), job())
    assert (outcome.ok, outcome.finish_reason) == (True, "length")
    harness.fake.script("fast-a", Behaviour(text=ANSWER))
    _, complete = await run(harness.executor(("openai:fast-a",)), job())
    assert complete.finish_reason == "stop"
