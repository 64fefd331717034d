"""The OpenAI-compatible API handlers: `/v1/chat/completions` (JSON or SSE) and `/v1/models`."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from aiohttp import web

from bots.answer import build_job
from bots.assembly import LLMStack
from bots.ids import hash_id
from bots.openai_wire import ApiError, SseAnswer, completion_body, parse_request
from routing.execution_settings import ExecutionSettings
from routing.execution_types import Delta, ExecEvent, Job, Link, Outcome
from routing.policy import Policy
from routing.router import Router
from routing.types import Conversation, Decision, Reason

logger = logging.getLogger(__name__)

AUTO_MODEL = "auto"
"""The model name that lets the router choose the tier."""
CHANNEL = "api"
"""This surface's name in `TIERBOT_CHANNEL_FLOORS` and `TIERBOT_CHANNEL_CEILINGS`."""
BODY_TIMEOUT_S = 30.0
"""Longest wait for a client to send its request body."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """Who called: the routing identity of the API key, or None for a keyless loopback call."""

    identity: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatBackend:
    """What the chat handler needs besides the LLM stack: the router, policy and limits."""

    router: Router
    policy: Policy
    execution: ExecutionSettings
    stream_batch_s: float = 0.0
    """Shortest gap between two writes of a streamed answer (`TIERBOT_API_STREAM_BATCH_MS`)."""
    id_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """HMAC key of user ids in logs (`TIERBOT_ID_HASH_KEY`; without one, a key of this process)."""


CALLER = web.RequestKey("caller", Caller)
CHAT = web.AppKey("chat", ChatBackend)
LLM = web.AppKey("llm", LLMStack)


def user_hash(key: bytes, value: str | None) -> str:
    """The keyed hash of an API user id for logs (never the id, nor an unkeyed hash of it)."""
    return "-" if value is None else hash_id(key, value)


def requested_tier(model: str, policy: Policy, chains: Sequence[Sequence[Link]]) -> int | None:
    """The tier a model name asks for: None for `auto`, else the named tier, or the cheapest tier
    whose chain has that model (`model` or `provider:model`); 404 `ApiError` for other names."""
    if model == AUTO_MODEL:
        return None
    if model in policy.tier_names:
        return policy.tier_names.index(model) + 1
    for tier, chain in enumerate(chains, start=1):
        if any(model in (link.model, link.key) for link in chain):
            return tier
    raise ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def _decide(backend: ChatBackend, conversation: Conversation, forced: int | None) -> Decision:
    """The router's decision, or the requested tier capped by entitlement and the API ceiling."""
    decision = backend.router.decide(conversation)
    if forced is None:
        return decision
    policy = backend.policy
    reasons = [Reason(code="model_requested", text=f"the request named {policy.name(forced)}")]
    allowed = policy.single_tier or min(
        policy.entitlement(conversation.user), policy.channel_ceilings.get(CHANNEL, policy.top)
    )
    if forced > allowed:
        reasons.append(Reason(code="entitlement_cap", text=f"allowed up to {policy.name(allowed)}"))
        forced = allowed
    return replace(decision, tier=forced, tier_name=policy.name(forced), reasons=tuple(reasons))


def _headers(tier: str, reasons: Iterable[str], link: Link | None) -> dict[str, str]:
    headers = {"x-tierbot-tier": tier, "x-tierbot-reasons": ",".join(dict.fromkeys(reasons))}
    if link is not None:
        headers["x-tierbot-provider"] = link.provider
        headers["x-tierbot-model"] = link.model
    return headers


def _unavailable(outcome: Outcome, headers: Mapping[str, str]) -> ApiError:
    return ApiError(
        503,
        f"no model could answer ({len(outcome.attempts)} attempts); try again later",
        kind="server_error",
        code="upstream_unavailable",
        headers=headers,
    )


def _first_link(chains: Sequence[Sequence[Link]], job: Job) -> Link | None:
    """The model the executor will try first: the best guess before the answer starts."""
    for chain in chains[job.tier - 1 : max(job.tier, job.max_tier)]:
        if chain:
            return chain[0]
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """`POST /v1/chat/completions`: route, run the tier chain, answer as JSON or SSE."""
    backend, llm = request.config_dict[CHAT], request.config_dict[LLM]
    async with asyncio.timeout(BODY_TIMEOUT_S):
        raw = await request.read()  # beyond client_max_size: HTTPRequestEntityTooLarge
    body = parse_request(raw)
    forced = requested_tier(body.model, backend.policy, llm.chains)
    user = body.user or request[CALLER].identity
    conversation = Conversation(turns=body.turns(), user=user, channel=CHANNEL)
    decision = _decide(backend, conversation, forced)
    job = build_job(
        decision=decision,
        messages=body.chat_messages(),
        user=user,
        channel=CHANNEL,
        policy=backend.policy,
        settings=backend.execution,
        continuation=body.stream,  # a streaming client cannot un-see text: continue, never restart
    )
    job = replace(job, max_tokens=min(body.output_cap or job.max_tokens, job.max_tokens))
    answer = _Answer(
        request=request,
        llm=llm,
        policy=backend.policy,
        decision=decision,
        user_tag=user_hash(backend.id_key, user),
    )
    if body.stream:
        return await answer.stream(
            job, include_usage=body.include_usage, batch_s=backend.stream_batch_s
        )
    return await answer.complete(job)


@dataclass(slots=True, kw_only=True)
class _Answer:
    """One chat completion being produced; local to one request."""

    request: web.Request
    llm: LLMStack
    policy: Policy
    decision: Decision
    user_tag: str
    """The keyed hash of the request's `user`, or `-`."""
    completion_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _log(self, outcome: Outcome) -> None:
        logger.info(
            "api answer id=%s user=%s tier=%s model=%s:%s ok=%s attempts=%d tokens=%d/%d "
            "cost_usd=%.6f total_s=%.2f",
            self.completion_id,
            self.user_tag,
            outcome.tier,
            outcome.provider,
            outcome.model,
            outcome.ok,
            len(outcome.attempts),
            outcome.input_tokens,
            outcome.output_tokens,
            outcome.cost_usd,
            outcome.total_s,
        )

    def _outcome_headers(self, outcome: Outcome) -> dict[str, str]:
        reasons = (*self.decision.reason_codes(), *(r.code for r in outcome.reasons))
        if outcome.tier is None or outcome.provider is None or outcome.model is None:
            return _headers(self.decision.tier_name, reasons, None)
        link = Link(provider=outcome.provider, model=outcome.model)
        return _headers(self.policy.name(outcome.tier), reasons, link)

    async def complete(self, job: Job) -> web.Response:
        """Run the job to its end and answer with one `chat.completion` object."""
        async with aclosing(self.llm.executor.run(job)) as events:
            outcome = await _outcome_of(events)
        self._log(outcome)
        headers = self._outcome_headers(outcome)
        if not outcome.ok:
            raise _unavailable(outcome, headers)
        body = completion_body(self.completion_id, self.created, outcome)
        return web.json_response(body, headers=headers)

    async def stream(self, job: Job, *, include_usage: bool, batch_s: float) -> web.StreamResponse:
        """Stream the job as `chat.completion.chunk` events. The tier and reasons headers come
        from the decision; the model and provider headers name the chain's first candidate.

        The first text goes out as soon as it comes; after that, with `batch_s`, a task of its
        own reads the executor while the writer sends what has come at most every `batch_s`,
        so a fast model costs a few writes per answer instead of one per token."""
        link = _first_link(self.llm.chains, job)
        sse = SseAnswer(
            request=self.request,
            headers=_headers(self.decision.tier_name, self.decision.reason_codes(), link),
            completion_id=self.completion_id,
            created=self.created,
            model=self.decision.tier_name if link is None else link.model,
            include_usage=include_usage,
        )
        async with aclosing(self.llm.executor.run(job)) as events:
            async for event in events:
                if isinstance(event, Outcome):
                    return await self._end(sse, event)
                if isinstance(event, Delta):
                    await sse.delta(event.text)
                    if batch_s:
                        break
                # No Restart comes: a continuation job continues instead of restarting.
            else:
                raise AssertionError("the executor ended without an Outcome")
            outcome = await _write_batches(events, sse, batch_s)
        return await self._end(sse, outcome)

    async def _end(self, sse: SseAnswer, outcome: Outcome) -> web.StreamResponse:
        self._log(outcome)
        if outcome.ok:
            return await sse.finish(outcome)
        if sse.response is None:
            raise _unavailable(outcome, self._outcome_headers(outcome))
        return await sse.fail(_unavailable(outcome, {}))


class _Pending:
    """The text the executor has given that is not written yet, and its outcome once it ends."""

    __slots__ = ("came", "outcome", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.outcome: Outcome | None = None
        self.came = asyncio.Event()

    async def read(self, events: AsyncIterator[ExecEvent]) -> None:
        """Take the events until the outcome."""
        async for event in events:
            if isinstance(event, Delta):
                self.text.append(event.text)
            elif isinstance(event, Outcome):
                self.outcome = event
                self.came.set()
                return
            self.came.set()
        raise AssertionError("the executor ended without an Outcome")


async def _write_batches(
    events: AsyncIterator[ExecEvent], sse: SseAnswer, batch_s: float
) -> Outcome:
    """Send the rest of the answer at most every `batch_s`, joining the pieces that came in
    between; return the outcome. The reading task ends with this call."""
    pending = _Pending()
    async with asyncio.TaskGroup() as group:
        group.create_task(pending.read(events))
        while True:
            await asyncio.sleep(batch_s)
            await pending.came.wait()
            pending.came.clear()
            if pending.text:
                text = "".join(pending.text)
                pending.text.clear()
                await sse.delta(text)
            if pending.outcome is not None:
                return pending.outcome


async def _outcome_of(events: AsyncGenerator[ExecEvent, None]) -> Outcome:
    """Skip the deltas (a JSON answer uses the outcome's text) and return the outcome."""
    async for event in events:
        if isinstance(event, Outcome):
            return event
    raise AssertionError("the executor ended without an Outcome")


async def list_models(request: web.Request) -> web.Response:
    """`GET /v1/models`: `auto`, every tier name, then every model of the chains."""
    policy, llm = request.config_dict[CHAT].policy, request.config_dict[LLM]
    owners = {AUTO_MODEL: "tierbot", **dict.fromkeys(policy.tier_names, "tierbot")}
    for chain in llm.chains:
        for link in chain:
            owners.setdefault(link.model, link.provider)
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": owner}
        for model, owner in owners.items()
    ]
    return web.json_response({"object": "list", "data": data})
