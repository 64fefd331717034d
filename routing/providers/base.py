"""The provider seam: request and stream-event values, the `LLMProvider` Protocol, error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import SecretStr

from routing.errors import (
    EmptyAnswer,
    ProviderBadResponse,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

ChatRole = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "other"]

_MAX_DETAIL_CHARS = 300
_REDACTED = "[redacted]"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """One message sent to a model."""

    role: ChatRole
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """What to ask which model: the conversation, an output cap and an optional temperature."""

    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    """The next piece of the answer, in order."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens billed for the call, as the provider reported them in the stream."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False
    """True when the provider reported no usage and the counts are estimates."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    """The model stopped: a normalised reason plus the provider's own word for it."""

    reason: FinishReason
    native_reason: str


StreamEvent = TextDelta | Usage | Finished


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """Where and how an adapter reaches its provider; one adapter (and client) per settings."""

    name: str
    base_url: str
    api_key: SecretStr
    connect_timeout: float = 5.0
    idle_timeout: float = 60.0
    """Longest wait for the response headers or for the next piece of the stream."""
    max_connections: int = 4096
    """Connections the adapter's client opens (and keeps alive) to the provider at most; a
    stream holds one for its whole length, so this caps the concurrent streams."""


class LLMProvider(Protocol):
    """Streams one chat completion; every failure is raised as a `ProviderError`.

    A stream yields `TextDelta`s (at least one), then exactly one `Usage`, then `Finished` last.
    Close it with `contextlib.aclosing` if you stop early; cancelling the consumer also closes
    the HTTP response.
    """

    @property
    def name(self) -> str: ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]: ...

    async def aclose(self) -> None: ...


class StreamTally:
    """What one stream has shown so far; decides at the end whether it was a complete answer."""

    __slots__ = (
        "_finish",
        "_prompt_chars",
        "_text_chars",
        "input_tokens",
        "model",
        "output_tokens",
        "provider",
    )

    def __init__(self, *, provider: str, model: str, prompt_chars: int = 0) -> None:
        self.provider = provider
        self.model = model
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._finish: Finished | None = None
        self._text_chars = 0
        self._prompt_chars = prompt_chars

    @classmethod
    def of(cls, provider: str, request: ChatRequest) -> StreamTally:
        """A tally for `provider`'s answer to `request` (its prompt size kept for estimates)."""
        return cls(
            provider=provider,
            model=request.model,
            prompt_chars=sum(len(m.content) for m in request.messages),
        )

    def text(self, text: str | None) -> TextDelta | None:
        """Return the delta to yield for `text`, or None when there is nothing to say."""
        if not text:
            return None
        self._text_chars += len(text)
        return TextDelta(text=text)

    def finish(self, native_reason: str, reason: FinishReason) -> None:
        """Record that the model stopped, and why."""
        self._finish = Finished(reason=reason, native_reason=native_reason)

    def close(self) -> tuple[Usage, Finished]:
        """Return the closing events, or raise if the stream was cut, empty or lacked usage."""
        if self._finish is None:
            raise ProviderUnavailable(
                f"{self.provider} {self.model}: stream ended before the model finished",
                provider=self.provider,
                model=self.model,
            )
        if not self._text_chars:
            raise EmptyAnswer(
                f"{self.provider} {self.model}: the model finished "
                f"({self._finish.native_reason}) without any text",
                provider=self.provider,
                model=self.model,
            )
        if self.input_tokens is None or self.output_tokens is None:
            # Some OpenAI-compatible servers never send usage. The answer is complete, so
            # failing over would pay twice; estimate (about 4 characters a token) and say so.
            logger.warning(
                "no token usage in stream, cost estimated provider=%s model=%s",
                self.provider,
                self.model,
            )
            return (
                Usage(
                    input_tokens=self.input_tokens or -(-self._prompt_chars // 4),
                    output_tokens=self.output_tokens or -(-self._text_chars // 4),
                    estimated=True,
                ),
                self._finish,
            )
        usage = Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)
        return usage, self._finish


def redact(text: str, secret: SecretStr) -> str:
    """Return `text` cut to a readable length with every occurrence of `secret` masked."""
    value = secret.get_secret_value()
    if value:
        text = text.replace(value, _REDACTED)
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[:_MAX_DETAIL_CHARS] + "..."
    return text


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Read `retry-after-ms` or `retry-after` (delay-seconds); None when absent or unreadable."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def status_error(
    status: int,
    detail: str,
    *,
    provider: str,
    model: str,
    headers: Mapping[str, str],
) -> ProviderError:
    """Return our error for an HTTP error status; `detail` must already be redacted."""
    message = f"{provider} {model}: HTTP {status}: {detail}"
    if status == 429:
        return ProviderRateLimited(
            message,
            provider=provider,
            model=model,
            http_status=status,
            retry_after=parse_retry_after(headers),
        )
    error_class: type[ProviderError]
    if status == 408:
        error_class = ProviderTimeout
    elif status == 409 or status >= 500:
        error_class = ProviderUnavailable
    elif status >= 400:
        error_class = ProviderConfigError
    else:
        error_class = ProviderBadResponse
    return error_class(message, provider=provider, model=model, http_status=status)


def timeout_error(provider: str, model: str, what: str) -> ProviderTimeout:
    """Return the error for a wait that ran out (`what` says which wait)."""
    return ProviderTimeout(f"{provider} {model}: {what}", provider=provider, model=model)


def unavailable_error(provider: str, model: str, what: str) -> ProviderUnavailable:
    """Return the error for a connection that failed or broke (`what` says how)."""
    return ProviderUnavailable(f"{provider} {model}: {what}", provider=provider, model=model)


def bad_response_error(provider: str, model: str, what: str) -> ProviderBadResponse:
    """Return the error for a reply that broke the wire protocol (`what` says how)."""
    return ProviderBadResponse(f"{provider} {model}: {what}", provider=provider, model=model)
