"""The `LLMProvider` contract for answers and HTTP errors, run against every adapter and SDK."""

from __future__ import annotations

import time

import pytest

from routing.errors import (
    EmptyAnswer,
    ProviderBadResponse,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from routing.providers import Finished, LLMProvider, StreamEvent, TextDelta, Usage
from tests.fakes.llm import Behaviour, FakeLLM, tokens, words
from tests.routing.providers.support import (
    API_KEY,
    MakeProvider,
    Vendor,
    chat,
    collect,
)

TEXT = "The quick brown fox jumps over the lazy dog."
NATIVE_STOP = {"openai": "stop", "anthropic": "end_turn", "groq": "stop"}


def text(events: list[StreamEvent]) -> str:
    """The answer the deltas spell (an adapter may join the tokens that arrive together)."""
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def first_tokens(count: int) -> str:
    return "".join(tokens(TEXT)[:count])


async def test_streams_the_text_in_order_then_usage_then_finished(
    provider: LLMProvider, fake_llm: FakeLLM, vendor: Vendor
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT))
    events: list[StreamEvent] = []

    await collect(provider, chat("m", system="Be brief.", user="Tell me about foxes"), events)

    assert text(events) == TEXT
    assert all(isinstance(e, TextDelta) for e in events[:-2])
    assert events[-2:] == [
        Usage(input_tokens=words("Be brief. Tell me about foxes"), output_tokens=len(tokens(TEXT))),
        Finished(reason="stop", native_reason=NATIVE_STOP[vendor]),
    ]
    assert fake_llm.count("m") == 1
    assert provider.name == vendor


async def test_tokens_arrive_as_the_model_produces_them(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text="one two three four", ttft=0.2, tokens_per_second=10))
    arrivals: list[float] = []
    start = time.monotonic()

    async for event in provider.stream(chat("m")):
        if isinstance(event, TextDelta):
            arrivals.append(time.monotonic() - start)

    assert len(arrivals) == 4
    assert arrivals[0] >= 0.2
    assert arrivals[-1] - arrivals[0] >= 0.1


async def test_a_length_stop_is_reported_as_length(
    provider: LLMProvider, fake_llm: FakeLLM, vendor: Vendor
) -> None:
    native = "max_tokens" if vendor == "anthropic" else "length"
    fake_llm.script("m", Behaviour(finish_reason=native))
    events: list[StreamEvent] = []

    await collect(provider, chat("m"), events)

    assert events[-1] == Finished(reason="length", native_reason=native)


async def test_an_unknown_finish_reason_is_other(provider: LLMProvider, fake_llm: FakeLLM) -> None:
    fake_llm.script("m", Behaviour(finish_reason="tool_calls"))
    events: list[StreamEvent] = []

    await collect(provider, chat("m"), events)

    assert events[-1] == Finished(reason="other", native_reason="tool_calls")


async def test_rate_limit_carries_retry_after(provider: LLMProvider, fake_llm: FakeLLM) -> None:
    fake_llm.script("m", Behaviour(status=429, retry_after="7"))

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(provider, chat("m"), [])

    assert (caught.value.retry_after, caught.value.http_status) == (7.0, 429)
    assert (caught.value.provider, caught.value.model) == (provider.name, "m")
    assert fake_llm.count("m") == 1  # the SDK does not retry behind our back


async def test_rate_limit_without_retry_after(provider: LLMProvider, fake_llm: FakeLLM) -> None:
    fake_llm.script("m", Behaviour(status=429))

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(provider, chat("m"), [])

    assert caught.value.retry_after is None


async def test_a_wrong_key_is_a_config_error(
    make_provider: MakeProvider, vendor: Vendor, fake_llm: FakeLLM
) -> None:
    provider = make_provider(vendor, api_key="sk-wrong-0000000000000000")

    with pytest.raises(ProviderConfigError) as caught:
        await collect(provider, chat("m"), [])

    assert caught.value.http_status == 401
    assert fake_llm.last("m").api_key == "sk-wrong-0000000000000000"


@pytest.mark.parametrize(
    ("status", "error"), [(404, ProviderConfigError), (403, ProviderConfigError)]
)
async def test_client_errors_are_config_errors(
    provider: LLMProvider, fake_llm: FakeLLM, status: int, error: type[ProviderError]
) -> None:
    fake_llm.script("m", Behaviour(status=status))

    with pytest.raises(error) as caught:
        await collect(provider, chat("m"), [])

    assert caught.value.http_status == status


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_unavailable(
    provider: LLMProvider, fake_llm: FakeLLM, status: int
) -> None:
    fake_llm.script("m", Behaviour(status=status))

    with pytest.raises(ProviderUnavailable) as caught:
        await collect(provider, chat("m"), [])

    assert caught.value.http_status == status
    assert fake_llm.count("m") == 1


async def test_a_cut_mid_stream_is_unavailable_after_the_first_deltas(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, cut_after=3))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailable):
        await collect(provider, chat("m"), events)

    assert text(events) == first_tokens(3)
    assert all(isinstance(e, TextDelta) for e in events)


async def test_a_clean_end_before_the_finish_is_unavailable(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, omit_finish=True))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailable, match="before the model finished"):
        await collect(provider, chat("m"), events)

    assert text(events) == TEXT


async def test_an_error_event_mid_stream_is_unavailable(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, error_event_after=2))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderUnavailable):
        await collect(provider, chat("m"), events)

    assert text(events) == first_tokens(2)


async def test_a_malformed_chunk_is_a_bad_response(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, malformed_after=1))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderBadResponse, match="malformed"):
        await collect(provider, chat("m"), events)

    assert text(events) == first_tokens(1)


async def test_a_stream_without_usage_is_answered_with_estimated_usage(
    provider: LLMProvider, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    fake_llm.script("m", Behaviour(text=TEXT, report_usage=False))
    events: list[StreamEvent] = []

    await collect(provider, chat("m"), events)

    usage = [e for e in events if isinstance(e, Usage)]
    assert text(events) == TEXT
    assert len(usage) == 1
    assert usage[0].estimated
    assert usage[0].output_tokens == -(-len(TEXT) // 4)
    assert usage[0].input_tokens > 0
    assert "no token usage" in caplog.text


async def test_an_empty_answer_raises_empty_answer(
    provider: LLMProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text=""))
    events: list[StreamEvent] = []

    with pytest.raises(EmptyAnswer):
        await collect(provider, chat("m"), events)

    assert events == []


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(status=400, error_message="bad request from key {api_key}"),
        Behaviour(status=429, error_message="slow down, {api_key}"),
        Behaviour(status=500, error_message="{api_key} broke us"),
        Behaviour(cut_after=1),
        Behaviour(malformed_after=1),
        Behaviour(text=""),
    ],
    ids=["400", "429", "500", "cut", "malformed", "empty"],
)
async def test_the_api_key_never_appears_in_an_error(
    provider: LLMProvider, fake_llm: FakeLLM, behaviour: Behaviour
) -> None:
    fake_llm.script("m", behaviour)

    with pytest.raises(ProviderError) as caught:
        await collect(provider, chat("m"), [])

    error = caught.value
    assert API_KEY not in f"{error} {error!r} {error.args}"
    if behaviour.error_message is not None:
        assert "[redacted]" in str(error)


async def test_a_rejected_key_is_not_echoed_in_the_error(
    make_provider: MakeProvider, vendor: Vendor, fake_llm: FakeLLM
) -> None:
    wrong = "sk-wrong-5555666677778888"
    provider = make_provider(vendor, api_key=wrong)
    fake_llm.script("m", Behaviour(error_message="Incorrect API key provided: {api_key}"))

    with pytest.raises(ProviderConfigError) as caught:
        await collect(provider, chat("m"), [])

    assert wrong not in str(caught.value)
