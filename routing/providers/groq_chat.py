"""Adapter for Groq's OpenAI-compatible chat completions (hosted Llama models), via the groq SDK.

The SDK makes the call (auth, base URL, status errors); the streamed body is read raw by
`routing.providers.sse`, which also finds Groq's usage in `x_groq.usage` or a `usage` chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import groq
import httpx

from routing.errors import ProviderError
from routing.providers.base import (
    ChatRequest,
    ProviderSettings,
    StreamEvent,
    StreamTally,
    redact,
    status_error,
    timeout_error,
    unavailable_error,
)
from routing.providers.sse import RawBody, chat_completions_body, stream_chat_chunks, timed_out

_ERRORS = (groq.GroqError, httpx.TransportError)


class GroqProvider:
    """Streams chat completions from Groq; usage comes from `x_groq.usage` or a `usage` chunk."""

    __slots__ = ("_client", "_settings")

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        self._client = groq.AsyncGroq(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            max_retries=0,
            timeout=groq.Timeout(None, connect=settings.connect_timeout),
            http_client=groq.DefaultAsyncHttpxClient(limits=limits),
        )

    @property
    def name(self) -> str:
        """The provider's name in logs, errors and metrics."""
        return self._settings.name

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.close()

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer to `request`; see `LLMProvider`."""
        tally = StreamTally.of(self.name, request)
        return stream_chat_chunks(
            lambda: self._open(request),
            settings=self._settings,
            tally=tally,
            errors=_ERRORS,
            translate=self._translate,
        )

    async def _open(self, request: ChatRequest) -> RawBody:
        # As in `openai_compat`: `post` skips the SDK's transform of typed params; the stream it
        # returns only holds the response, whose body is read raw.
        stream = await self._client.post(
            "/openai/v1/chat/completions",
            cast_to=object,
            body=chat_completions_body(request),
            stream=True,
            stream_cls=groq.AsyncStream[object],
        )
        return stream.response

    def _translate(self, exc: Exception, model: str) -> ProviderError:
        if isinstance(exc, groq.APIStatusError):
            detail = redact(exc.message, self._settings.api_key)
            headers = exc.response.headers
            return status_error(
                exc.status_code, detail, provider=self.name, model=model, headers=headers
            )
        if timed_out(exc):  # the only transport timeout set is the one to connect
            connect = self._settings.connect_timeout
            return timeout_error(self.name, model, f"could not connect within {connect:g} s")
        if isinstance(exc, groq.APIConnectionError | httpx.TransportError):
            return unavailable_error(self.name, model, "connection failed or broke")
        detail = redact(str(exc), self._settings.api_key)
        return unavailable_error(self.name, model, f"the SDK failed: {detail}")
