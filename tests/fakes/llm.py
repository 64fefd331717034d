"""A fake LLM server on loopback, scriptable per model, that records every request it gets."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fakes.llm_wire import (
    AnthropicWire,
    Call,
    GroqWire,
    Json,
    OpenAIWire,
    Provider,
    Wire,
    bad_key_message,
    roles,
    tokens,
    words,
)

__all__ = ["Behaviour", "FakeLLM", "Received", "tokens", "words"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How the fake answers one model. Fault positions (`*_after`) count output tokens sent."""

    text: str = "Hello from the fake model."
    """The answer; "" for an empty answer. Split into tokens by `tokens()`."""
    ttft: float = 0.0
    """Seconds between the response headers and the first token."""
    tokens_per_second: float | None = None
    """Pace of the tokens after the first; None sends them back to back."""
    status: int = 200
    """Anything but 200 answers with the provider's error JSON and this status."""
    retry_after: str | None = None
    """Retry-After header value sent with an error status."""
    error_message: str | None = None
    """Overrides the error text; `{api_key}` becomes the key the request carried."""
    hang: Literal["before_headers", "before_first_token"] | None = None
    """Never answer: before sending any headers, or after the headers of a stream."""
    stall_after: int | None = None
    """Go silent (connection open) after this many tokens."""
    cut_after: int | None = None
    """Close the connection after this many tokens, mid chunked body."""
    malformed_after: int | None = None
    """Send a frame whose JSON is broken after this many tokens."""
    error_event_after: int | None = None
    """Send the provider's in-stream error event after this many tokens, then stop."""
    omit_finish: bool = False
    """End the stream cleanly but without a finish reason (or Anthropic's message_stop)."""
    report_usage: bool = True
    """Report token usage (OpenAI only when the request sets `stream_options.include_usage`)."""
    groq_usage: Literal["x_groq", "standard"] = "x_groq"
    """Where Groq reports usage: `x_groq.usage` on the final chunk, or a usage-only chunk."""
    finish_reason: str | None = None
    """The provider's native finish reason; None gives `stop` / `end_turn`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One request the fake received."""

    provider: Provider
    model: str
    body: Json
    api_key: str


class FakeLLM:
    """One loopback server for all three protocols, scripted per model; records every request."""

    def __init__(self, *, api_key: str) -> None:
        self._api_key = api_key
        self._behaviours: dict[str, Behaviour] = {}
        self._disconnects: Counter[str] = Counter()
        self._gone: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._closed = asyncio.Event()
        self.received: list[Received] = []
        app = web.Application()
        for path, wire in (
            ("/v1/chat/completions", OpenAIWire()),
            ("/openai/v1/chat/completions", GroqWire()),
            ("/v1/messages", AnthropicWire()),
        ):
            app.router.add_post(path, self._handler(wire))
        self._server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        """The server's root URL; the Anthropic and Groq SDKs take it as their base URL."""
        return str(self._server.make_url("")).rstrip("/")

    @property
    def openai_url(self) -> str:
        """The base URL for the OpenAI SDK (it appends `/chat/completions`)."""
        return f"{self.url}/v1"

    def script(self, model: str, behaviour: Behaviour) -> None:
        """Answer requests for `model` as `behaviour` says from now on."""
        self._behaviours[model] = behaviour

    def count(self, model: str) -> int:
        """How many requests named `model`."""
        return sum(1 for r in self.received if r.model == model)

    def last(self, model: str) -> Received:
        """The newest request that named `model`."""
        return [r for r in self.received if r.model == model][-1]

    def disconnects(self, model: str) -> int:
        """How many requests for `model` the client abandoned while the fake was still answering."""
        return self._disconnects[model]

    async def disconnected(self, model: str) -> None:
        """Return once a client has abandoned a request for `model` (at once if one already has)."""
        await self._gone[model].wait()

    async def __aenter__(self) -> Self:
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed.set()
        await self._server.close()

    def _handler(self, wire: Wire) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, wire)

        return handle

    async def _handle(self, request: web.Request, wire: Wire) -> web.StreamResponse:
        body: Json = await request.json()
        model, key = str(body.get("model")), wire.api_key(request)
        self.received.append(Received(provider=wire.provider, model=model, body=body, api_key=key))
        try:
            return await self._answer(request, wire, body, key)
        except asyncio.CancelledError:  # TestServer cancels the handler when the client leaves
            self._disconnects[model] += 1
            self._gone[model].set()
            raise

    async def _answer(
        self, request: web.Request, wire: Wire, body: Json, key: str
    ) -> web.StreamResponse:
        model = str(body.get("model"))
        b = self._behaviours.get(model, Behaviour())
        if key != self._api_key:
            return self._error(
                wire, 401, b.error_message or bad_key_message(wire.provider, key), key
            )
        if wire.provider == "anthropic" and "system" in roles(body):
            return self._error(wire, 400, 'messages: Unexpected role "system"', key)
        if b.status != 200:
            return self._error(wire, b.status, b.error_message or "fake error", key, b.retry_after)
        if b.hang == "before_headers":
            await self._closed.wait()
            return web.Response(status=499)
        options = body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        call = Call(
            model=model,
            input_tokens=wire.input_tokens(body),
            include_usage=include,
            groq_usage=b.groq_usage,
        )
        reason = b.finish_reason or wire.stop
        if not body.get("stream"):
            return web.json_response(wire.completion(call, b.text, reason, b.report_usage))
        return await self._stream(request, wire, call, b)

    def _error(
        self, wire: Wire, status: int, message: str, key: str, retry_after: str | None = None
    ) -> web.Response:
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        body = wire.error_body(status, message.replace("{api_key}", key))
        return web.json_response(body, status=status, headers=headers)

    async def _stream(
        self, request: web.Request, wire: Wire, call: Call, b: Behaviour
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if b.hang == "before_first_token":
            await self._closed.wait()
            return response
        await asyncio.sleep(b.ttft)
        for frame in wire.start(call):
            await response.write(frame)
        pieces = tokens(b.text)
        for sent in range(len(pieces) + 1):
            if not await self._fault(request, response, wire, sent, b):
                return response
            if sent < len(pieces):
                await response.write(wire.delta(call, pieces[sent]))
                if b.tokens_per_second:
                    await asyncio.sleep(1 / b.tokens_per_second)
        reason = None if b.omit_finish else b.finish_reason or wire.stop
        for frame in wire.end(call, reason, len(pieces) if b.report_usage else None):
            await response.write(frame)
        await response.write_eof()
        return response

    async def _fault(
        self,
        request: web.Request,
        response: web.StreamResponse,
        wire: Wire,
        sent: int,
        b: Behaviour,
    ) -> bool:
        """Play the fault scheduled after `sent` tokens; False when the stream must stop here."""
        if sent == b.stall_after:
            await self._closed.wait()
            return False
        if sent == b.cut_after:
            assert request.transport is not None
            request.transport.close()  # unlike abort(), lets the tokens already written through
            return False
        if sent == b.error_event_after:
            await response.write(wire.error_event())
            return False
        if sent == b.malformed_after:
            await response.write(wire.malformed())
        return True
