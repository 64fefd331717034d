"""OpenAI-specific behaviour of `OpenAICompatProvider`: what it sends on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from routing.providers import ChatMessage, ChatRequest, ProviderSettings, StreamEvent, TextDelta
from routing.providers.openai_compat import OpenAICompatProvider
from tests.fakes.llm import FakeLLM
from tests.routing.providers.support import API_KEY, MakeProvider, chat, collect

CONVERSATION = ChatRequest(
    model="gpt-4o-mini",
    messages=(
        ChatMessage(role="system", content="Be terse."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Hello."),
        ChatMessage(role="user", content="What is 2+2?"),
    ),
    max_tokens=50,
    temperature=0.2,
)


@pytest.fixture
async def legacy(fake_llm: FakeLLM) -> AsyncIterator[OpenAICompatProvider]:
    """An adapter for a compatible server that only knows `max_tokens`."""
    settings = ProviderSettings(
        name="vllm", base_url=fake_llm.openai_url, api_key=SecretStr(API_KEY)
    )
    provider = OpenAICompatProvider(settings, legacy_max_tokens=True)
    yield provider
    await provider.aclose()


async def test_sends_the_conversation_and_asks_for_usage_in_the_stream(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    await collect(make_provider("openai"), CONVERSATION, [])

    body = fake_llm.last("gpt-4o-mini").body
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    assert (body["max_completion_tokens"], body["temperature"]) == (50, 0.2)
    assert "max_tokens" not in body


async def test_leaves_temperature_out_when_the_request_has_none(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    await collect(make_provider("openai"), chat("gpt-5"), [])

    assert "temperature" not in fake_llm.last("gpt-5").body


async def test_legacy_servers_get_max_tokens(
    legacy: OpenAICompatProvider, fake_llm: FakeLLM
) -> None:
    events: list[StreamEvent] = []

    await collect(legacy, chat("llama3"), events)

    body = fake_llm.last("llama3").body
    assert (body.get("max_tokens"), "max_completion_tokens" in body) == (64, False)
    assert isinstance(events[0], TextDelta)
    assert legacy.name == "vllm"
