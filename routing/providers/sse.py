"""Chat-completion streams read raw: SSE framing, chunk folding and the stream loop the
OpenAI-compatible adapters share.

The adapters still make the call with their vendor's SDK (auth, base URL, status errors), but
read the response body themselves: no SDK model per chunk, one `json.loads` for the events
of a read, and one `TextDelta` per read of the body, holding the text of every event it
brought (with the openai SDK's aiohttp transport a read takes all the bytes that have come).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol

from routing.errors import ProviderError
from routing.providers.base import (
    ChatRequest,
    FinishReason,
    ProviderSettings,
    StreamEvent,
    StreamTally,
    TextDelta,
    bad_response_error,
    redact,
    timeout_error,
    unavailable_error,
)

logger = logging.getLogger(__name__)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
}
_DONE = b"[DONE]"


def chat_completions_body(
    request: ChatRequest, *, limit: str = "max_completion_tokens", usage_chunk: bool = False
) -> dict[str, object]:
    """The streaming Chat Completions request for `request`, as plain JSON: `limit` names the
    token cap (older servers only know `max_tokens`); `usage_chunk` asks for OpenAI's final
    usage chunk (Groq reports usage without being asked)."""
    body: dict[str, object] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        limit: request.max_tokens,
        "stream": True,
    }
    if usage_chunk:
        body["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


class RawBody(Protocol):
    """A streamed HTTP response body (`httpx.Response`, `httpx2.Response`)."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class SseDecoder:
    """Splits a byte stream into the `data` payloads of complete server-sent events.

    Lines may end in LF, CRLF or CR; `event`, `id`, `retry` and comment lines are ignored (chat
    completion streams carry everything in `data`). Payloads stay bytes: `json.loads` reads UTF-8.
    """

    __slots__ = ("_data", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Take the next bytes; return the payloads of the events they complete."""
        buffer = self._rest + chunk if self._rest else chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe the first half of a CRLF: wait for the next byte
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._rest = lines.pop() + held
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        return events


def fold_events(payloads: list[bytes], tally: StreamTally) -> tuple[str, Exception | None]:
    """Fold the chunks of some events into `tally`: their text joined, and the `ValueError` or
    `StreamErrorEvent` that stopped the folding early, if any (the text is what came before).

    Several payloads are parsed as one JSON array, one `json.loads` call for all of them; if
    that fails, one by one, so that the text before a malformed chunk is kept.
    """
    chunks: list[object] | None = None
    if len(payloads) > 1:
        try:
            parsed = json.loads(b"[" + b",".join(payloads) + b"]")
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == len(payloads):
            chunks = parsed
    texts: list[str] = []
    for index, payload in enumerate(payloads):
        try:
            chunk = json.loads(payload) if chunks is None else chunks[index]
            texts.append(fold_chunk(chunk, tally))
        except (ValueError, StreamErrorEvent) as exc:
            return "".join(texts), exc
    return "".join(texts), None


def fold_chunk(chunk: object, tally: StreamTally) -> str:
    """Record what one parsed `chat.completion.chunk` says in `tally`; return its text.

    Raises `ValueError` for a value that is not a chunk, and `StreamErrorEvent` for an error
    the server reported in the stream.
    """
    if not isinstance(chunk, dict):
        raise ValueError(f"expected a JSON object, got {type(chunk).__name__}")
    if chunk.get("error"):
        raise StreamErrorEvent(_error_message(chunk["error"]))
    usage = chunk.get("usage")
    if not usage:
        x_groq = chunk.get("x_groq")  # Groq puts usage in `x_groq` on the final chunk
        usage = x_groq.get("usage") if isinstance(x_groq, dict) else None
    if usage:
        if not isinstance(usage, dict):
            raise ValueError("usage is not an object")
        tally.input_tokens = _count(usage, "prompt_tokens")
        tally.output_tokens = _count(usage, "completion_tokens")
    choices = chunk.get("choices")
    return _fold_choice(choices[0] if isinstance(choices, list) and choices else choices, tally)


def _fold_choice(choice: object, tally: StreamTally) -> str:
    """The finish reason and text of a chunk's first choice (None or [] when it has none)."""
    if not choice:
        return ""
    if not isinstance(choice, dict):
        raise ValueError("choices[0] is not an object")
    reason = choice.get("finish_reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise ValueError("finish_reason is not a string")
        tally.finish(reason, _FINISH_REASONS.get(reason, "other"))
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else None
    if text is None or isinstance(text, str):
        return text or ""
    raise ValueError("delta.content is not a string")


def _count(usage: dict[str, object], name: str) -> int | None:
    value = usage.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"usage.{name} is not an integer")
    return value


def _error_message(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "an error occurred mid-stream"


class StreamErrorEvent(Exception):
    """The server reported an error inside the stream."""


class _BadChunk(Exception):
    """A chunk that is not a `chat.completion.chunk` (its cause says why)."""


Translate = Callable[[Exception, str], ProviderError]
"""Maps an SDK or transport exception (and the model) to our error."""


def timed_out(exc: BaseException) -> bool:
    """True when a `TimeoutError` is in the chain of causes (or contexts) of a transport failure.

    The SDKs' HTTP layers re-raise under their own names (the aiohttp transport of the openai
    SDK even reports a refused connection as a connect timeout), so only the root tells.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def stream_chat_chunks(
    open_body: Callable[[], Awaitable[RawBody]],
    *,
    settings: ProviderSettings,
    tally: StreamTally,
    errors: tuple[type[Exception], ...],
    translate: Translate,
) -> AsyncGenerator[StreamEvent, None]:
    """Open the response with `open_body`, then read its chunks; see `LLMProvider.stream`.

    Exceptions of `errors` (the SDK's and its HTTP library's) are raised through `translate`;
    a wait longer than `settings.idle_timeout` for the headers or the next bytes is a timeout.
    """
    idle, provider, model = settings.idle_timeout, tally.provider, tally.model
    logger.debug("llm call provider=%s model=%s", provider, model)
    try:
        async with asyncio.timeout(idle):
            body = await open_body()
        try:
            async for delta in _read(body, tally, idle):
                yield delta
        finally:
            await body.aclose()
    except TimeoutError as exc:
        raise timeout_error(provider, model, f"nothing received for {idle:g} s") from exc
    except StreamErrorEvent as exc:
        detail = redact(str(exc), settings.api_key)
        what = f"error reported in the stream: {detail}"
        raise unavailable_error(provider, model, what) from exc
    except _BadChunk as exc:
        detail = redact(str(exc), settings.api_key)
        raise bad_response_error(provider, model, f"malformed stream chunk: {detail}") from exc
    except errors as exc:
        raise translate(exc, model) from exc
    for event in tally.close():
        yield event


async def _read(body: RawBody, tally: StreamTally, idle: float) -> AsyncGenerator[TextDelta, None]:
    """Yield one delta per network read (its events' text joined); stop at `[DONE]` but drain
    what follows, so that the connection goes back to the pool. A failure after some text of
    the same read is raised once that text has been yielded."""
    decoder = SseDecoder()
    chunks = body.aiter_bytes()
    done = False
    while True:
        async with asyncio.timeout(idle):
            raw = await anext(chunks, None)
        if raw is None:
            return
        payloads = [] if done else decoder.feed(raw)
        for index, payload in enumerate(payloads):
            if done := payload.startswith(_DONE):
                del payloads[index:]
                break
        text, failure = fold_events(payloads, tally)
        if (delta := tally.text(text)) is not None:
            yield delta
        if isinstance(failure, ValueError):
            raise _BadChunk(str(failure)) from failure
        if failure is not None:
            raise failure
