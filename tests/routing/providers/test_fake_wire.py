"""The fake speaks the real wire formats: its bodies and SSE frames validate as the SDKs' models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import anthropic.types
import groq.types.chat
import openai.types.chat
import pytest
from pydantic import TypeAdapter

from tests.fakes.llm import Behaviour, FakeLLM
from tests.fakes.llm_wire import Json
from tests.routing.providers.support import API_KEY

MESSAGES = [{"role": "user", "content": "Say hello"}]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
ANTHROPIC_EVENT: TypeAdapter[anthropic.types.RawMessageStreamEvent] = TypeAdapter(
    anthropic.types.RawMessageStreamEvent
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=HEADERS) as client:
        yield client


async def post_json(session: aiohttp.ClientSession, url: str, body: Json) -> Json:
    async with session.post(url, json=body) as response:
        assert response.status == 200
        data: Json = await response.json()
        return data


async def sse_data(session: aiohttp.ClientSession, url: str, body: Json) -> list[str]:
    """The `data:` payloads of a streamed reply, in order."""
    async with session.post(url, json=body) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = await response.text()
    return [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]


async def test_openai_completion_and_chunks(
    fake_llm: FakeLLM, session: aiohttp.ClientSession
) -> None:
    url = f"{fake_llm.openai_url}/chat/completions"
    body: Json = {"model": "gpt-4o-mini", "messages": MESSAGES}

    done = openai.types.chat.ChatCompletion.model_validate(await post_json(session, url, body))
    frames = await sse_data(
        session, url, {**body, "stream": True, "stream_options": {"include_usage": True}}
    )

    assert done.choices[0].message.content == "Hello from the fake model."
    assert done.usage is not None
    assert frames[-1] == "[DONE]"
    chunks = [openai.types.chat.ChatCompletionChunk.model_validate_json(f) for f in frames[:-1]]
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []


async def test_groq_completion_and_chunks(
    fake_llm: FakeLLM, session: aiohttp.ClientSession
) -> None:
    url = f"{fake_llm.url}/openai/v1/chat/completions"
    body: Json = {"model": "llama-3.3-70b-versatile", "messages": MESSAGES}

    groq.types.chat.ChatCompletion.model_validate(await post_json(session, url, body))
    frames = await sse_data(session, url, {**body, "stream": True})

    chunks = [groq.types.chat.ChatCompletionChunk.model_validate_json(f) for f in frames[:-1]]
    last = chunks[-1]
    assert last.x_groq is not None
    assert last.x_groq.usage is not None


async def test_anthropic_message_and_events(
    fake_llm: FakeLLM, session: aiohttp.ClientSession
) -> None:
    url = f"{fake_llm.url}/v1/messages"
    body: Json = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": MESSAGES}

    message = anthropic.types.Message.model_validate(await post_json(session, url, body))
    frames = await sse_data(session, url, {**body, "stream": True})

    assert message.usage.output_tokens == 5
    kinds = [json.loads(f)["type"] for f in frames]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for frame in frames:
        if json.loads(frame)["type"] != "ping":
            ANTHROPIC_EVENT.validate_json(frame)


async def test_errors_use_each_providers_shape(
    fake_llm: FakeLLM, session: aiohttp.ClientSession
) -> None:
    fake_llm.script("m", Behaviour(status=429, retry_after="3"))
    shapes = {}
    for url in (
        f"{fake_llm.openai_url}/chat/completions",
        f"{fake_llm.url}/v1/messages",
    ):
        async with session.post(url, json={"model": "m", "messages": MESSAGES}) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3")
            shapes[url.rsplit("/", 1)[-1]] = await response.json()

    assert shapes["completions"]["error"]["type"] == "requests"
    assert shapes["messages"]["type"] == "error"
    assert shapes["messages"]["error"]["type"] == "rate_limit_error"
    assert fake_llm.count("m") == 2
