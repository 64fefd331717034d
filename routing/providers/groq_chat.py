"""Adapter for Groq's OpenAI-compatible chat completions (hosted Llama models), via the groq SDK."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator

import groq
import httpx
from groq.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from routing.errors import ProviderError
from routing.providers.base import (
    ChatMessage,
    ChatRequest,
    FinishReason,
    ProviderSettings,
    StreamEvent,
    StreamTally,
    TextDelta,
    bad_response_error,
    redact,
    status_error,
    timeout_error,
    unavailable_error,
)

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
}


class GroqProvider:
    """Streams chat completions from Groq; usage comes from `x_groq.usage` or a `usage` chunk."""

    __slots__ = ("_client", "_settings")

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._client = groq.AsyncGroq(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            max_retries=0,
            timeout=groq.Timeout(None, connect=settings.connect_timeout),
        )

    @property
    def name(self) -> str:
        """The provider's name in logs, errors and metrics."""
        return self._settings.name

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer to `request`; see `LLMProvider`."""
        tally = StreamTally(
            provider=self.name,
            model=request.model,
            prompt_chars=sum(len(m.content) for m in request.messages),
        )
        idle = self._settings.idle_timeout
        logger.debug("llm call provider=%s model=%s", self.name, request.model)
        try:
            async with asyncio.timeout(idle):
                chunks = await self._open(request)
            # The groq SDK's stream does not close its response when abandoned; `async with` does.
            async with chunks:
                while True:
                    async with asyncio.timeout(idle):
                        chunk = await anext(chunks, None)
                    if chunk is None:
                        break
                    if (delta := _fold(chunk, tally)) is not None:
                        yield delta
        except (groq.GroqError, httpx.TransportError, json.JSONDecodeError, TimeoutError) as exc:
            raise self._translate(exc, request.model) from exc
        for event in tally.close():
            yield event

    async def _open(self, request: ChatRequest) -> groq.AsyncStream[ChatCompletionChunk]:
        return await self._client.chat.completions.create(
            model=request.model,
            messages=[_message(m) for m in request.messages],
            max_completion_tokens=request.max_tokens,
            temperature=groq.omit if request.temperature is None else request.temperature,
            stream=True,
        )

    def _translate(self, exc: Exception, model: str) -> ProviderError:
        if isinstance(exc, groq.APIStatusError):
            detail = redact(exc.message, self._settings.api_key)
            headers = exc.response.headers
            return status_error(
                exc.status_code, detail, provider=self.name, model=model, headers=headers
            )
        if isinstance(exc, TimeoutError):
            idle = self._settings.idle_timeout
            return timeout_error(self.name, model, f"nothing received for {idle:g} s")
        if isinstance(exc, groq.APITimeoutError):
            connect = self._settings.connect_timeout
            return timeout_error(self.name, model, f"could not connect within {connect:g} s")
        if isinstance(exc, groq.APIConnectionError | httpx.TransportError):
            return unavailable_error(self.name, model, "connection failed or broke")
        if isinstance(exc, groq.APIError):
            detail = redact(exc.message, self._settings.api_key)
            return unavailable_error(self.name, model, f"error reported in the stream: {detail}")
        detail = redact(str(exc), self._settings.api_key)
        return bad_response_error(self.name, model, f"malformed stream chunk: {detail}")


def _message(message: ChatMessage) -> ChatCompletionMessageParam:
    match message.role:
        case "system":
            return {"role": "system", "content": message.content}
        case "user":
            return {"role": "user", "content": message.content}
        case "assistant":
            return {"role": "assistant", "content": message.content}


def _fold(chunk: ChatCompletionChunk, tally: StreamTally) -> TextDelta | None:
    """Record what `chunk` says in `tally`; return the text delta it carries, if any."""
    usage = chunk.x_groq.usage if chunk.x_groq is not None else None
    usage = chunk.usage or usage
    if usage is not None:
        tally.input_tokens = usage.prompt_tokens
        tally.output_tokens = usage.completion_tokens
    if not chunk.choices:
        return None
    choice = chunk.choices[0]
    if choice.finish_reason is not None:
        tally.finish(choice.finish_reason, _FINISH_REASONS.get(choice.finish_reason, "other"))
    return tally.text(choice.delta.content)
