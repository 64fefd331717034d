"""Groq specifics of `GroqProvider`: usage in `x_groq` or in a usage chunk; the request body."""

from __future__ import annotations

import pytest

from routing.providers import ChatMessage, ChatRequest, StreamEvent, Usage
from tests.fakes.llm import Behaviour, FakeLLM, tokens, words
from tests.routing.providers.support import MakeProvider, collect

TEXT = "Llamas are members of the camel family."
REQUEST = ChatRequest(
    model="llama-3.1-8b-instant",
    messages=(
        ChatMessage(role="system", content="Be terse."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Hello."),
        ChatMessage(role="user", content="What is a llama?"),
    ),
    max_tokens=80,
    temperature=0.0,
)
EXPECTED_USAGE = Usage(
    input_tokens=words("Be terse. Hi Hello. What is a llama?"), output_tokens=len(tokens(TEXT))
)


@pytest.mark.parametrize("where", ["x_groq", "standard"])
async def test_usage_is_read_wherever_groq_reports_it(
    make_provider: MakeProvider, fake_llm: FakeLLM, where: str
) -> None:
    fake_llm.script(
        REQUEST.model,
        Behaviour(text=TEXT, groq_usage="x_groq" if where == "x_groq" else "standard"),
    )
    events: list[StreamEvent] = []

    await collect(make_provider("groq"), REQUEST, events)

    assert events[-2] == EXPECTED_USAGE


async def test_sends_the_conversation_with_max_completion_tokens(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    await collect(make_provider("groq"), REQUEST, [])

    body = fake_llm.last(REQUEST.model).body
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is a llama?"},
    ]
    assert (body["max_completion_tokens"], body["temperature"], body["stream"]) == (80, 0.0, True)
