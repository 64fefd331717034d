"""The OpenAI, Anthropic and Groq wire formats the fake LLM server speaks: JSON bodies and SSE."""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

Provider = Literal["openai", "anthropic", "groq"]
Json = dict[str, object]
_ids = itertools.count(1)


def words(text: str) -> int:
    """Count the fake's input tokens in `text`: whitespace-separated words."""
    return len(text.split())


def tokens(text: str) -> list[str]:
    """Split `text` into the fake's output tokens: each word with the whitespace after it."""
    return re.findall(r"\s*\S+\s*", text) if text.strip() else ([text] if text else [])


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """What a wire format needs to know about the request it is answering."""

    model: str
    input_tokens: int
    include_usage: bool
    """The client asked for an OpenAI-style usage chunk (`stream_options.include_usage`)."""
    groq_usage: Literal["x_groq", "standard"] = "x_groq"


def sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class Wire(Protocol):
    """One provider's wire format: authentication, error bodies, and the frames of a stream."""

    provider: Provider
    stop: str

    def api_key(self, request: web.Request) -> str: ...
    def input_tokens(self, body: Json) -> int: ...
    def error_body(self, status: int, message: str) -> Json: ...
    def completion(self, call: Call, text: str, reason: str, usage: bool) -> Json: ...
    def start(self, call: Call) -> list[bytes]: ...
    def delta(self, call: Call, text: str) -> bytes: ...
    def end(self, call: Call, reason: str | None, output: int | None) -> list[bytes]: ...
    def error_event(self) -> bytes: ...
    def malformed(self) -> bytes: ...


_OPENAI_ERROR_TYPES = {401: "invalid_request_error", 429: "requests", 400: "invalid_request_error"}


class OpenAIWire:
    provider: Provider = "openai"
    stop = "stop"

    def api_key(self, request: web.Request) -> str:
        return request.headers.get("Authorization", "").removeprefix("Bearer ")

    def input_tokens(self, body: Json) -> int:
        messages = body.get("messages")
        assert isinstance(messages, list)
        return sum(words(str(m.get("content", ""))) for m in messages)

    def error_body(self, status: int, message: str) -> Json:
        kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def _usage(self, call: Call, output: int) -> Json:
        total = call.input_tokens + output
        return {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": output,
            "total_tokens": total,
        }

    def _chunk(self, call: Call, choices: list[Json], **extra: object) -> Json:
        head = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk"}
        return {
            **head,
            "created": int(time.time()),
            "model": call.model,
            "choices": choices,
            **extra,
        }

    def completion(self, call: Call, text: str, reason: str, usage: bool) -> Json:
        message = {"role": "assistant", "content": text}
        return {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": reason, "logprobs": None}
            ],
            **({"usage": self._usage(call, len(tokens(text)))} if usage else {}),
        }

    def start(self, call: Call) -> list[bytes]:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        return [sse(self._chunk(call, [choice]))]

    def delta(self, call: Call, text: str) -> bytes:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        return sse(self._chunk(call, [choice]))

    def end(self, call: Call, reason: str | None, output: int | None) -> list[bytes]:
        frames = []
        if reason is not None:
            frames.append(
                sse(self._chunk(call, [{"index": 0, "delta": {}, "finish_reason": reason}]))
            )
        if output is not None and call.include_usage:
            frames.append(sse(self._chunk(call, [], usage=self._usage(call, output))))
        return [*frames, b"data: [DONE]\n\n"]

    def error_event(self) -> bytes:
        return sse({"error": {"message": "The server had an error", "type": "server_error"}})

    def malformed(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [{"ind\n\n'


class GroqWire(OpenAIWire):
    provider: Provider = "groq"

    def end(self, call: Call, reason: str | None, output: int | None) -> list[bytes]:
        frames = []
        if output is not None and call.groq_usage == "standard":
            frames.append(sse(self._chunk(call, [], usage=self._usage(call, output))))
        if reason is not None:
            choice = {"index": 0, "delta": {}, "finish_reason": reason}
            x_groq: Json = {"id": f"req_{next(_ids)}"}
            if output is not None and call.groq_usage == "x_groq":
                x_groq["usage"] = self._usage(call, output)
            frames.insert(0, sse(self._chunk(call, [choice], x_groq=x_groq)))
        return [*frames, b"data: [DONE]\n\n"]


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicWire:
    provider: Provider = "anthropic"
    stop = "end_turn"

    def api_key(self, request: web.Request) -> str:
        # The API takes `x-api-key`; the anthropic 2.x SDK sends the key as a bearer token.
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return request.headers.get("x-api-key", bearer)

    def input_tokens(self, body: Json) -> int:
        messages = body.get("messages")
        assert isinstance(messages, list)
        return words(str(body.get("system", ""))) + sum(words(m["content"]) for m in messages)

    def error_body(self, status: int, message: str) -> Json:
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _message(self, call: Call, content: list[Json], reason: str | None, out: int) -> Json:
        return {
            "id": f"msg_{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": {"input_tokens": call.input_tokens, "output_tokens": out},
        }

    def completion(self, call: Call, text: str, reason: str, usage: bool) -> Json:
        content: list[Json] = [{"type": "text", "text": text}] if text else []
        return self._message(call, content, reason, len(tokens(text)))

    def start(self, call: Call) -> list[bytes]:
        start = {"type": "message_start", "message": self._message(call, [], None, 1)}
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        return [
            sse(start, "message_start"),
            sse(block, "content_block_start"),
            sse({"type": "ping"}, "ping"),
        ]

    def delta(self, call: Call, text: str) -> bytes:
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        }
        return sse(delta, "content_block_delta")

    def end(self, call: Call, reason: str | None, output: int | None) -> list[bytes]:
        frames = [sse({"type": "content_block_stop", "index": 0}, "content_block_stop")]
        if reason is None:
            return frames
        usage = {} if output is None else {"usage": {"output_tokens": output}}
        delta = {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}}
        frames.append(sse({**delta, **usage}, "message_delta"))
        return [*frames, sse({"type": "message_stop"}, "message_stop")]

    def error_event(self) -> bytes:
        return sse(self.error_body(529, "Overloaded"), "error")

    def malformed(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "ind\n\n'


def roles(body: Json) -> set[str]:
    messages = body.get("messages")
    assert isinstance(messages, list)
    return {str(m.get("role")) for m in messages}


def bad_key_message(provider: Provider, key: str) -> str:
    if provider == "openai":
        masked = f"{key[:3]}{'*' * max(len(key) - 7, 0)}{key[-4:]}"
        return f"Incorrect API key provided: {masked}. You can find your API key at https://platform.openai.com/account/api-keys."
    return "invalid x-api-key" if provider == "anthropic" else "Invalid API Key"
