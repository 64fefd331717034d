"""OpenAI's wire format at our edge: the request model, error bodies and the SSE chunk writer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from bots.errors import BotError
from routing.execution_types import Outcome
from routing.providers import ChatMessage, ChatRole
from routing.types import Role, Turn

WRITE_TIMEOUT_S = 30.0
"""Longest wait for a slow client to take the next piece of a streamed answer."""

Json = dict[str, object]
_ROLES: dict[str, ChatRole] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
_TURN_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant"}


class ApiError(BotError):
    """A request the API refuses, rendered as OpenAI's `{"error": {...}}` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: Json = {
            "error": {"message": message, "type": kind, "param": param, "code": code}
        }
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """The JSON error response."""
        return web.json_response(self.body, status=self.status, headers=self.headers)


def _text_of(value: object) -> object:
    """Flatten OpenAI's list of content parts into one string; only text parts are allowed."""
    if not isinstance(value, list):
        return value
    texts = []
    for index, part in enumerate(value):
        text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
        if not isinstance(text, str):
            raise ValueError(f"part {index}: only text content parts are supported")
        texts.append(text)
    return "\n".join(texts)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Annotated[str, BeforeValidator(_text_of)]


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(default=False, strict=True)


class ChatCompletionRequest(BaseModel):
    """The fields of an OpenAI chat completion request that tierbot honours; others are ignored
    (`temperature`, `top_p`, ...)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    # strict: JSON booleans and integers only, as OpenAI's API (no `"stream": 0`, `"n": "1"`)
    stream: bool = Field(default=False, strict=True)
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    n: int = Field(default=1, ge=1, le=1, strict=True)
    user: str | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _has_user_message(self) -> ChatCompletionRequest:
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages: needs at least one user message")
        return self

    @property
    def include_usage(self) -> bool:
        """The client asked for a final usage chunk."""
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def output_cap(self) -> int | None:
        """The client's limit on answer tokens, if any."""
        return self.max_completion_tokens or self.max_tokens

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        """The messages to send to a model (`developer` is read as `system`)."""
        return tuple(ChatMessage(role=_ROLES[m.role], content=m.content) for m in self.messages)

    def turns(self) -> tuple[Turn, ...]:
        """The user and assistant messages, as turns for the router."""
        return tuple(
            Turn(role=_TURN_ROLES[m.role], text=m.content)
            for m in self.messages
            if m.role in _TURN_ROLES
        )


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """Validate a request body; raise a 400 `ApiError` naming the first bad field."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
        param = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"{param}: {message}" if param else message, param=param) from None


def usage_of(outcome: Outcome) -> Json:
    """The `usage` object of an outcome."""
    return {
        "prompt_tokens": outcome.input_tokens,
        "completion_tokens": outcome.output_tokens,
        "total_tokens": outcome.input_tokens + outcome.output_tokens,
    }


def _finish(outcome: Outcome) -> str:
    """OpenAI's finish reason: `length` when the output cap cut the answer, else `stop`."""
    return "length" if outcome.finish_reason == "length" else "stop"


def completion_body(completion_id: str, created: int, outcome: Outcome) -> Json:
    """The `chat.completion` object of a successful outcome."""
    message = {"role": "assistant", "content": outcome.text, "refusal": None}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": outcome.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(outcome),
            }
        ],
        "usage": usage_of(outcome),
        "system_fingerprint": None,
    }


class _SseResponse(web.StreamResponse):
    """A streamed response whose headers go out with the first chunk, in one write."""

    _send_headers_immediately = False  # aiohttp's own switch, as `web.Response` sets it


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


_DELTA_OPEN = b'{"index":0,"delta":{"content":'
_DELTA_CLOSE = b'},"logprobs":null,"finish_reason":null}'
_DONE_FRAME = b"data: [DONE]\n\n"


@dataclass(slots=True, kw_only=True)
class SseAnswer:
    """One streamed answer: the response opens at the first text, so that a failure before any
    text can still be a plain 503. Chunks carry `model` (the chain's first candidate, which is
    all that is known until the answer ends); the finish and usage chunks name the model that
    actually answered.

    Frames are encoded from bytes templates, and each call writes once: the headers, the role
    chunk and the first text go out together, and so do the finish, usage, `[DONE]` and the
    end of the body."""

    request: web.Request
    headers: dict[str, str]
    completion_id: str
    created: int
    model: str
    include_usage: bool
    response: web.StreamResponse | None = None
    _head: bytes = b""
    _tail: bytes = b""

    def __post_init__(self) -> None:
        self._frame_parts()

    def _frame_parts(self) -> None:
        """The bytes before and after `choices` of every chunk of this answer."""
        self._head = b"".join(
            (
                b'data: {"id":',
                _dumps(self.completion_id),
                b',"object":"chat.completion.chunk","created":',
                str(self.created).encode(),
                b',"model":',
                _dumps(self.model),
                b',"system_fingerprint":null,"choices":[',
            )
        )
        self._tail = b'],"usage":null}\n\n' if self.include_usage else b"]}\n\n"

    def _frame(self, choice: bytes) -> bytes:
        return b"".join((self._head, choice, self._tail))

    async def _write(self, data: bytes, *, last: bool = False) -> web.StreamResponse:
        response = self.response
        if response is None:
            response = self.response = _SseResponse(headers=self.headers)
            response.content_type = "text/event-stream"
            response.headers["Cache-Control"] = "no-cache"
            response.headers["X-Accel-Buffering"] = "no"  # proxies must not hold chunks back
            role = b'{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,'
            data = self._frame(role + b'"finish_reason":null}') + data
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await response.prepare(self.request)
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            if last:
                await response.write_eof(data)
            else:
                await response.write(data)
        return response

    async def delta(self, text: str) -> None:
        """Send the next piece of the answer (after the role chunk, the first time)."""
        await self._write(
            b"".join((self._head, _DELTA_OPEN, _dumps(text), _DELTA_CLOSE, self._tail))
        )

    async def finish(self, outcome: Outcome) -> web.StreamResponse:
        """Send the finish chunk, the usage chunk if asked for, and `[DONE]`; end the body."""
        if outcome.model and outcome.model != self.model:
            self.model = outcome.model
            self._frame_parts()
        finish = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":'
        frames = [self._frame(finish + _dumps(_finish(outcome)) + b"}")]
        if self.include_usage:
            frames.append(self._head + b'],"usage":' + _dumps(usage_of(outcome)) + b"}\n\n")
        frames.append(_DONE_FRAME)
        return await self._write(b"".join(frames), last=True)

    async def fail(self, error: ApiError) -> web.StreamResponse:
        """End a stream that already showed text with an error event, and no `[DONE]`."""
        return await self._write(b"data: " + _dumps(error.body) + b"\n\n", last=True)
