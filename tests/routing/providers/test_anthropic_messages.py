"""Anthropic specifics of `AnthropicProvider`: system prompt, roles, error events in the stream."""

from __future__ import annotations

import pytest

from routing.errors import ProviderRateLimited, ProviderUnavailable
from routing.providers import ChatMessage, ChatRequest, Finished, StreamEvent
from tests.fakes.llm import Behaviour, FakeLLM
from tests.routing.providers.support import MakeProvider, chat, collect

MODEL = "claude-haiku-4-5"
REQUEST = ChatRequest(
    model=MODEL,
    messages=(
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Hello."),
        ChatMessage(role="system", content="Answer in English."),
        ChatMessage(role="user", content="What is 2+2?"),
    ),
    max_tokens=100,
    temperature=0.5,
)


async def test_system_messages_become_the_system_prompt(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    await collect(make_provider("anthropic"), REQUEST, [])

    body = fake_llm.last(MODEL).body
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert (body["max_tokens"], body["stream"]) == (100, True)
    assert "temperature" not in body  # the anthropic 2.x SDK has no sampling parameters


async def test_no_system_message_sends_no_system_prompt(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    await collect(make_provider("anthropic"), chat(MODEL, system=None), [])

    assert "system" not in fake_llm.last(MODEL).body


async def test_an_overloaded_event_mid_stream_is_classified_like_a_529(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script(MODEL, Behaviour(error_event_after=1))

    with pytest.raises(ProviderUnavailable, match="error event in the stream") as caught:
        await collect(make_provider("anthropic"), REQUEST, [])

    assert caught.value.http_status == 529


async def test_an_overloaded_status_is_unavailable(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script(MODEL, Behaviour(status=529, retry_after="2"))

    with pytest.raises(ProviderUnavailable) as caught:
        await collect(make_provider("anthropic"), REQUEST, [])

    assert caught.value.http_status == 529
    assert not isinstance(caught.value, ProviderRateLimited)


async def test_a_refusal_is_reported_as_content_filter(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script(MODEL, Behaviour(finish_reason="refusal"))
    events: list[StreamEvent] = []

    await collect(make_provider("anthropic"), REQUEST, events)

    assert events[-1] == Finished(reason="content_filter", native_reason="refusal")
