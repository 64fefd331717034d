"""Adapter for Anthropic's Messages API (Claude models), via the anthropic SDK."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator

import anthropic
import httpx2
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStreamEvent,
)
from anthropic.types import TextDelta as AnthropicTextDelta

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

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}

# An `error` event inside a 200 stream names its type; these are the statuses Anthropic documents
# for each type, so a mid-stream error is classified like the same error before the stream.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "timeout_error": 504,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicProvider:
    """Streams Claude messages; our system messages become the request's `system` prompt.

    `ChatRequest.temperature` is not sent: the anthropic 2.x SDK has no sampling parameters.
    """

    __slots__ = ("_client", "_settings")

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            max_retries=0,
            timeout=anthropic.Timeout(None, connect=settings.connect_timeout),
            # Tracing is off unless the composition root wires it; the SDK would read the env.
            open_telemetry=False,
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
        tally = StreamTally.of(self.name, request)
        idle = self._settings.idle_timeout
        logger.debug("llm call provider=%s model=%s", self.name, request.model)
        try:
            async with asyncio.timeout(idle):
                events = await self._open(request)
            async with events:
                while True:
                    async with asyncio.timeout(idle):
                        event = await anext(events, None)
                    if event is None:
                        break
                    if (delta := _fold(event, tally)) is not None:
                        yield delta
        except (
            anthropic.AnthropicError,
            httpx2.TransportError,
            json.JSONDecodeError,
            TimeoutError,
        ) as exc:
            raise self._translate(exc, request.model) from exc
        for closing in tally.close():
            yield closing

    async def _open(self, request: ChatRequest) -> anthropic.AsyncStream[RawMessageStreamEvent]:
        if request.temperature is not None:
            logger.debug("temperature not sent provider=%s model=%s", self.name, request.model)
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        return await self._client.messages.create(
            model=request.model,
            system=system or anthropic.omit,
            messages=[_message(m) for m in request.messages if m.role != "system"],
            max_tokens=request.max_tokens,
            stream=True,
        )

    def _translate(self, exc: Exception, model: str) -> ProviderError:
        if isinstance(exc, anthropic.APIStatusError):
            detail = redact(exc.message, self._settings.api_key)
            status = exc.status_code
            if status < 400:  # an error event inside the stream
                status = _STATUS_OF_ERROR_TYPE.get(str(exc.type), 500)
                detail = f"error event in the stream: {detail}"
            headers = exc.response.headers
            return status_error(status, detail, provider=self.name, model=model, headers=headers)
        if isinstance(exc, TimeoutError):
            idle = self._settings.idle_timeout
            return timeout_error(self.name, model, f"nothing received for {idle:g} s")
        if isinstance(exc, anthropic.APITimeoutError):
            connect = self._settings.connect_timeout
            return timeout_error(self.name, model, f"could not connect within {connect:g} s")
        if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
            return unavailable_error(self.name, model, "connection failed or broke")
        detail = redact(str(exc), self._settings.api_key)
        return bad_response_error(self.name, model, f"malformed stream event: {detail}")


def _message(message: ChatMessage) -> MessageParam:
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _fold(event: RawMessageStreamEvent, tally: StreamTally) -> TextDelta | None:
    """Record what `event` says in `tally`; return the text delta it carries, if any."""
    match event:
        case RawMessageStartEvent(message=message):
            usage = message.usage
            cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
            tally.input_tokens = usage.input_tokens + cached
            tally.output_tokens = usage.output_tokens
        case RawContentBlockDeltaEvent(delta=AnthropicTextDelta(text=text)):
            return tally.text(text)
        case RawMessageDeltaEvent(delta=delta, usage=usage):
            # The final output count. The SDK does not validate, so a server that leaves it out
            # gives None here; the count from message_start was only provisional, so forget it.
            tally.output_tokens = None if usage is None else usage.output_tokens
            if delta.stop_reason is not None:
                tally.finish(delta.stop_reason, FINISH_REASONS.get(delta.stop_reason, "other"))
    return None
