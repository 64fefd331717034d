"""The executor: streams a decision's answer through tier chains, breakers, deadlines and budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from routing.breaker import Breaker, Permit
from routing.budget import RetryBudget
from routing.errors import (
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
)
from routing.execution_types import (
    Attempt,
    Deadlines,
    Delta,
    ExecEvent,
    Job,
    Link,
    Outcome,
    Restart,
)
from routing.nonanswer import non_answer
from routing.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishReason,
    LLMProvider,
    TextDelta,
    Usage,
)
from routing.types import Reason

logger = logging.getLogger(__name__)

CONTINUE_PROMPT = (
    "Continue your previous answer exactly where it stopped. Do not repeat anything already "
    "written and do not comment on the interruption."
)
DEFAULT_COOLDOWN_S = 30.0
"""How long a rate-limited model is skipped when its 429 carried no usable Retry-After."""
MAX_HONOURED_RETRY_AFTER_S = 60.0
CONFIG_ERROR_COOLDOWN_S = 60.0
"""A model that rejects our key or request is skipped this long (it is not a failure)."""


@dataclass(slots=True)
class _Run:
    """What one request has done so far; local to one `Executor.run` call."""

    job: Job
    started: float
    attempts: list[Attempt] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    shown: str = ""
    """Text the user has seen from attempts that did not finish (dropped at a restart)."""
    calls: int = 0
    stopped: bool = False
    free_retry: bool = False
    """The last call was refused (429, bad key), so falling back adds no load to a sick model."""


@dataclass(slots=True)
class _Try:
    """One provider call in progress."""

    link: Link
    tier: int
    started: float
    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    ttft: float | None = None
    finish: FinishReason = "stop"


class Executor:
    """Turns a tier decision into one streamed answer, or one clear failure, with its costs."""

    def __init__(
        self,
        *,
        chains: Sequence[Sequence[Link]],
        providers: Mapping[str, LLMProvider],
        breaker: Breaker,
        budget: RetryBudget,
        deadlines: Deadlines,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chains = chains
        self._providers = providers
        self._breaker = breaker
        self._budget = budget
        self._deadlines = deadlines
        self._clock = clock

    async def run(self, job: Job) -> AsyncGenerator[ExecEvent, None]:
        """Yield the answer's deltas (with a `Restart` when a fallback replaces shown text),
        then exactly one `Outcome`."""
        run = _Run(job=job, started=self._clock())
        tier = job.tier
        while True:
            for link in self._chains[tier - 1]:
                permit = await self._admit(run, link)
                if run.stopped:
                    break
                if permit is None:
                    continue
                attempt = _Try(link=link, tier=tier, started=self._clock())
                async with aclosing(self._call(run, attempt, permit)) as events:
                    async for event in events:
                        yield event
                if run.attempts[-1].error is None:
                    if self._accept(run, attempt, tier):
                        yield self._outcome(run, attempt)
                        return
                    break  # a non-answer: promote
            if run.stopped or tier >= min(job.max_tier, len(self._chains)):
                yield self._outcome(run, None)
                return
            run.reasons.append(
                _reason("tier_promoted", f"tier {tier} could not answer; trying tier {tier + 1}")
            )
            tier += 1

    async def _admit(self, run: _Run, link: Link) -> Permit | None:
        """Ask the attempt limit, the breaker and the retry budget whether to call this link."""
        if run.calls >= run.job.max_attempts:
            run.stopped = True
            run.reasons.append(_reason("attempts_exhausted", f"{run.calls} attempts made"))
            return None
        if self._clock() >= run.started + self._deadlines.total_s:
            run.stopped = True
            run.reasons.append(_reason("deadline", "the total time for this answer is spent"))
            return None
        if run.calls > 0 and not run.free_retry and not self._budget.try_retry():
            run.stopped = True
            run.reasons.append(_reason("retry_budget", "the retry budget is spent; no fallback"))
            return None
        permit = await self._breaker.allow(link.key)
        if permit is None:
            run.attempts.append(_skipped(link, "breaker_open"))
            return None
        if run.calls == 0:
            self._budget.first_attempt()
        run.calls += 1
        return permit

    async def _call(
        self, run: _Run, attempt: _Try, permit: Permit
    ) -> AsyncGenerator[ExecEvent, None]:
        """Stream one provider call, translating deadlines, and record how it ended."""
        error: ProviderError | None = None
        try:
            async with aclosing(self._stream(run, attempt)) as events:
                async for event in events:
                    yield event
        except ProviderError as exc:
            error = exc
        await self._settle(permit, error)
        run.free_retry = isinstance(error, ProviderRateLimited | ProviderConfigError)
        run.attempts.append(
            Attempt(
                tier=attempt.tier,
                provider=attempt.link.provider,
                model=attempt.link.model,
                error=None if error is None else type(error).__name__,
                detail="" if error is None else str(error)[:300],
                latency_s=self._clock() - attempt.started,
                ttft_s=attempt.ttft,
            )
        )
        if error is not None and attempt.text:
            run.shown += "".join(attempt.text)

    async def _stream(self, run: _Run, attempt: _Try) -> AsyncGenerator[ExecEvent, None]:
        link, job = attempt.link, run.job
        provider = self._providers[link.provider]
        request = ChatRequest(
            model=link.model, messages=self._messages(run), max_tokens=job.max_tokens
        )
        deadline = run.started + self._deadlines.total_s
        async with aclosing(provider.stream(request)) as events:
            while True:
                first = attempt.ttft is None
                limit = (
                    self._deadlines.first_token_for(attempt.tier)
                    if first
                    else self._deadlines.inter_token_s
                )
                wait = min(limit, deadline - self._clock())
                try:
                    async with asyncio.timeout(max(wait, 0.0)):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    what = "first token" if first else "next token"
                    if wait < limit:
                        what = f"the whole answer ({self._deadlines.total_s:g} s in total)"
                    raise ProviderTimeout(
                        f"{link.key}: no {what} within {max(wait, 0.0):.1f} s",
                        provider=link.provider,
                        model=link.model,
                    ) from None
                if isinstance(event, TextDelta):
                    if first:
                        attempt.ttft = self._clock() - attempt.started
                        if run.shown and not job.continuation:
                            run.shown = ""
                            yield Restart(reason=f"answer restarted on {link.key}")
                    attempt.text.append(event.text)
                    yield Delta(text=event.text)
                elif isinstance(event, Usage):
                    attempt.usage = event
                else:
                    attempt.finish = event.reason

    def _messages(self, run: _Run) -> tuple[ChatMessage, ...]:
        """The job's messages, plus the shown text and a continue request for API clients."""
        if not (run.job.continuation and run.shown):
            return run.job.messages
        return (
            *run.job.messages,
            ChatMessage(role="assistant", content=run.shown),
            ChatMessage(role="user", content=CONTINUE_PROMPT),
        )

    async def _settle(self, permit: Permit, error: ProviderError | None) -> None:
        """Tell the breaker how the call went: rate limits cool down, config errors don't count."""
        if error is None:
            await self._breaker.success(permit)
        elif isinstance(error, ProviderRateLimited):
            after = error.retry_after
            if after is None or not 0 < after <= MAX_HONOURED_RETRY_AFTER_S:
                after = DEFAULT_COOLDOWN_S
            await self._breaker.cooldown(permit.key, after)
        elif isinstance(error, ProviderConfigError):
            logger.error(
                "provider configuration error, fix the key, model or URL: model=%s status=%s; "
                "skipping it for %d s",
                permit.key,
                error.http_status,
                CONFIG_ERROR_COOLDOWN_S,
            )
            await self._breaker.cooldown(permit.key, CONFIG_ERROR_COOLDOWN_S)
        else:
            await self._breaker.failure(permit)

    def _accept(self, run: _Run, attempt: _Try, tier: int) -> bool:
        """Return False (recording why) when a lower tier gave a non-answer worth retrying."""
        job = run.job
        if not job.retry_non_answers or job.continuation or tier >= job.max_tier:
            return True
        why = non_answer("".join(attempt.text))
        if why is None:
            return True
        run.reasons.append(_reason("non_answer", f"{attempt.link.key} gave a {why}"))
        run.shown += "".join(attempt.text)
        return False

    def _outcome(self, run: _Run, attempt: _Try | None) -> Outcome:
        total = self._clock() - run.started
        if attempt is None:
            return Outcome(
                ok=False,
                tier=None,
                provider=None,
                model=None,
                text="",
                attempts=tuple(run.attempts),
                reasons=(*run.reasons, _reason("no_answer", "no provider answered")),
                input_tokens=0,
                output_tokens=0,
                cost_usd=0.0,
                ttft_s=None,
                total_s=total,
            )
        usage = attempt.usage or Usage(input_tokens=0, output_tokens=0)
        prefix = run.shown if run.job.continuation else ""
        return Outcome(
            ok=True,
            tier=attempt.tier,
            provider=attempt.link.provider,
            model=attempt.link.model,
            text=prefix + "".join(attempt.text),
            attempts=tuple(run.attempts),
            reasons=tuple(run.reasons),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=attempt.link.cost(usage),
            finish_reason=attempt.finish,
            ttft_s=None if attempt.ttft is None else attempt.started - run.started + attempt.ttft,
            total_s=total,
        )


def _reason(code: str, text: str) -> Reason:
    return Reason(code=code, text=text)


def _skipped(link: Link, why: str) -> Attempt:
    return Attempt(
        tier=0, provider=link.provider, model=link.model, error=why, detail="", latency_s=0.0
    )
