"""The offline provider: labelled, deterministic answers that stream at tier-dependent speeds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from routing.providers import ChatMessage, ChatRequest, Finished, LLMProvider, TextDelta, Usage
from routing.providers.offline import OFFLINE_PREFIX, SPEEDS, OfflineProvider, answer_text
from tests.routing.providers.support import chat

FAST = 0.1
"""A speed factor that keeps the streams short but the timing differences measurable."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timed:
    """What one offline stream produced, and when."""

    deltas: tuple[str, ...]
    usage: Usage
    finished: Finished
    first_token_s: float
    total_s: float


async def timed(provider: LLMProvider, request: ChatRequest) -> Timed:
    """Consume a stream, checking the event order: deltas, then one Usage, then Finished last."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    first: float | None = None
    deltas: list[str] = []
    tail: list[Usage | Finished] = []
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            assert tail == [], "a delta came after usage or finish"
            first = loop.time() - started if first is None else first
            deltas.append(event.text)
        else:
            tail.append(event)
    usage, finished = tail
    assert isinstance(usage, Usage)
    assert isinstance(finished, Finished)
    assert first is not None
    return Timed(
        deltas=tuple(deltas),
        usage=usage,
        finished=finished,
        first_token_s=first,
        total_s=loop.time() - started,
    )


async def test_the_answer_is_labelled_streamed_and_accounted() -> None:
    request = chat("offline-fast", user="How do I reset my router?")
    got = await timed(OfflineProvider(speed_factor=FAST), request)
    text = "".join(got.deltas)
    assert text == answer_text(request)
    assert text.startswith(OFFLINE_PREFIX + " ")
    assert "(offline-fast)" in text
    assert "How do I reset my router?" in text
    assert len(got.deltas) > 5
    assert got.usage == Usage(
        input_tokens=sum(len(m.content) for m in request.messages) // 4 + 1,
        output_tokens=len(got.deltas),
    )
    assert got.finished == Finished(reason="stop", native_reason="stop")


async def test_the_same_request_gives_the_same_text() -> None:
    provider = OfflineProvider(speed_factor=0.0)
    first = await timed(provider, chat("offline-mid", user="What is a VPN?"))
    second = await timed(provider, chat("offline-mid", user="What is a VPN?"))
    other = await timed(provider, chat("offline-mid", user="Why is the sky blue?"))
    assert first.deltas == second.deltas
    assert first.deltas != other.deltas


def test_the_answer_quotes_the_last_user_message_only() -> None:
    history = (
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="first question"),
        ChatMessage(role="assistant", content="first answer"),
        ChatMessage(role="user", content="  second   question  "),
    )
    text = answer_text(ChatRequest(model="offline-frontier", messages=history, max_tokens=64))
    assert "\u201csecond question\u201d" in text
    assert "first" not in text


def test_a_long_question_is_cut_to_twelve_words() -> None:
    question = " ".join(f"w{i}" for i in range(20))
    text = answer_text(chat("offline-fast", user=question))
    assert "\u201cw0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11\u201d" in text


@pytest.mark.parametrize(
    "messages",
    [
        (ChatMessage(role="system", content="only a system prompt"),),
        (ChatMessage(role="user", content="   "),),
    ],
    ids=["no-user-message", "blank-user-message"],
)
def test_an_empty_question_still_gets_an_answer(messages: tuple[ChatMessage, ...]) -> None:
    text = answer_text(ChatRequest(model="offline-fast", messages=messages, max_tokens=64))
    assert text.startswith(OFFLINE_PREFIX)
    assert "\u201c(empty message)\u201d" in text


@pytest.mark.parametrize(("max_tokens", "words"), [(3, 3), (1, 1), (0, 1)])
async def test_max_tokens_caps_the_words(max_tokens: int, words: int) -> None:
    request = ChatRequest(model="offline-fast", messages=chat("x").messages, max_tokens=max_tokens)
    got = await timed(OfflineProvider(speed_factor=0.0), request)
    assert len(got.deltas) == words
    assert got.usage.output_tokens == words
    assert got.deltas[0] == OFFLINE_PREFIX


async def test_higher_tiers_answer_more_slowly() -> None:
    """A busy machine only ever adds delay, so the best of a few runs is each model's speed."""
    provider = OfflineProvider(speed_factor=FAST)
    first: dict[str, float] = {}
    total: dict[str, float] = {}
    for model in ("offline-fast", "offline-mid", "offline-frontier"):
        request = ChatRequest(model=model, messages=chat(model).messages, max_tokens=10)
        runs = [await timed(provider, request) for _ in range(3)]
        first[model] = min(r.first_token_s for r in runs)
        total[model] = min(r.total_s for r in runs)
        assert first[model] >= SPEEDS[model].first_token_s * FAST
    assert first["offline-fast"] < first["offline-mid"] < first["offline-frontier"]
    assert total["offline-fast"] < total["offline-mid"] < total["offline-frontier"]


async def test_an_unknown_model_streams_at_the_default_speed() -> None:
    got = await timed(OfflineProvider(speed_factor=0.0), chat("offline-custom"))
    assert "".join(got.deltas).startswith(f"{OFFLINE_PREFIX} ")
    assert "(offline-custom)" in "".join(got.deltas)


async def test_it_is_a_provider_with_nothing_to_close() -> None:
    provider: LLMProvider = OfflineProvider()
    assert provider.name == "offline"
    await provider.aclose()
    await provider.aclose()
