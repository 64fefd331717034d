"""Adapter for OpenAI's Chat Completions API and any server that speaks it, via the openai SDK.

The SDK makes the call (auth, base URL, status errors); the streamed body is read raw by
`routing.providers.sse`, without building an SDK model per chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2
import openai

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

_ERRORS = (openai.OpenAIError, httpx2.TransportError)


class OpenAICompatProvider:
    """Streams chat completions from OpenAI or an OpenAI-compatible server (vLLM, Ollama, ...).

    OpenAI's own models take `max_completion_tokens`; set `legacy_max_tokens` for servers that
    only know the older `max_tokens`.
    """

    __slots__ = ("_client", "_legacy_max_tokens", "_settings")

    def __init__(self, settings: ProviderSettings, *, legacy_max_tokens: bool = False) -> None:
        self._settings = settings
        self._legacy_max_tokens = legacy_max_tokens
        limits = httpx2.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        )
        self._client = openai.AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            max_retries=0,
            timeout=openai.Timeout(None, connect=settings.connect_timeout),
            http_client=openai.DefaultAioHttpClient(limits=limits),
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
        # `post` rather than `chat.completions.create`: the body is already plain JSON, so the
        # SDK's per-request transform of typed params (about 0.5 ms of CPU) is skipped; the SDK
        # still adds auth and base URL and raises its status errors. The stream it returns is
        # only a holder of the response: its body is read raw.
        limit = "max_tokens" if self._legacy_max_tokens else "max_completion_tokens"
        stream = await self._client.post(
            "/chat/completions",
            cast_to=object,
            body=chat_completions_body(request, limit=limit, usage_chunk=True),
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        return stream.response

    def _translate(self, exc: Exception, model: str) -> ProviderError:
        if isinstance(exc, openai.APIStatusError):
            detail = redact(exc.message, self._settings.api_key)
            headers = exc.response.headers
            return status_error(
                exc.status_code, detail, provider=self.name, model=model, headers=headers
            )
        if timed_out(exc):  # the only transport timeout set is the one to connect
            connect = self._settings.connect_timeout
            return timeout_error(self.name, model, f"could not connect within {connect:g} s")
        if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
            return unavailable_error(self.name, model, "connection failed or broke")
        detail = redact(str(exc), self._settings.api_key)
        return unavailable_error(self.name, model, f"the SDK failed: {detail}")
