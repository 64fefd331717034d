"""Raw reading of chat-completion streams: SSE framing, chunk folding, the shared stream loop."""

from __future__ import annotations

import json

import pytest

from routing.errors import ProviderBadResponse
from routing.providers import Finished, StreamEvent, TextDelta, Usage
from routing.providers.base import StreamTally
from routing.providers.sse import SseDecoder, StreamErrorEvent, fold_events, timed_out
from tests.fakes.llm import Behaviour, FakeLLM
from tests.routing.providers.support import MakeProvider, chat, collect


def chunk(text: str | None = None, **extra: object) -> bytes:
    choice: dict[str, object] = {"index": 0, "delta": {} if text is None else {"content": text}}
    if "finish_reason" in extra:
        choice["finish_reason"] = extra.pop("finish_reason")
    return json.dumps({"choices": [choice], **extra}).encode()


def tally() -> StreamTally:
    return StreamTally(provider="p", model="m")


def test_events_end_at_a_blank_line_whatever_the_line_ends() -> None:
    decoder = SseDecoder()

    assert decoder.feed(b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d") == [b"a", b"b", b"c"]
    assert decoder.feed(b"\n\n") == [b"d"]


@pytest.mark.parametrize("cut", range(1, 30))
def test_an_event_split_anywhere_across_reads_comes_out_whole(cut: int) -> None:
    wire = b'data: {"x": 1}\r\n\r\ndata: second\r\n\r\n'
    decoder = SseDecoder()

    assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == [b'{"x": 1}', b"second"]


def test_data_lines_join_and_other_fields_are_skipped() -> None:
    decoder = SseDecoder()
    wire = b": keep-alive\n\nevent: message\nid: 7\nretry: 10\ndata:one\ndata: two\n\n"

    assert decoder.feed(wire) == [b"one\ntwo"]


def test_several_chunks_fold_into_their_joined_text_usage_and_finish() -> None:
    seen = tally()
    payloads = [
        chunk("Hel"),
        chunk("lo"),
        chunk(finish_reason="length"),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}}).encode(),
    ]

    text, failure = fold_events(payloads, seen)
    seen.text(text)

    assert (text, failure) == ("Hello", None)
    assert seen.close() == (
        Usage(input_tokens=4, output_tokens=2),
        Finished(reason="length", native_reason="length"),
    )


def test_groq_usage_is_read_from_x_groq() -> None:
    seen = tally()
    usage = {"prompt_tokens": 3, "completion_tokens": 1}

    text, _ = fold_events([chunk("Hi", finish_reason="stop", x_groq={"usage": usage})], seen)
    seen.text(text)

    assert seen.close()[0] == Usage(input_tokens=3, output_tokens=1)


@pytest.mark.parametrize(
    "bad",
    [
        b'{"choices": [{"ind',
        b"[1, 2]",
        b'{"choices": "nope"}',
        b'{"choices": [{"delta": {"content": 5}}]}',
        b'{"choices": [{"finish_reason": 1}]}',
        b'{"choices": [], "usage": {"prompt_tokens": "many"}}',
    ],
)
def test_the_text_before_a_malformed_chunk_is_kept_and_the_error_returned(bad: bytes) -> None:
    text, failure = fold_events([chunk("one "), chunk("two "), bad, chunk("three")], tally())

    assert text == "one two "
    assert isinstance(failure, ValueError)


def test_an_error_event_stops_the_fold() -> None:
    error = json.dumps({"error": {"message": "overloaded"}}).encode()

    text, failure = fold_events([chunk("a"), error, chunk("b")], tally())

    assert text == "a"
    assert isinstance(failure, StreamErrorEvent)
    assert str(failure) == "overloaded"


def test_a_timeout_is_found_behind_the_sdk_names() -> None:
    wrapped = ConnectionError("connect timeout")
    wrapped.__cause__ = RuntimeError("mapped")
    wrapped.__cause__.__context__ = TimeoutError()
    refused = ConnectionError("connect timeout")
    refused.__cause__ = ConnectionRefusedError()

    assert (timed_out(wrapped), timed_out(refused)) == (True, False)


@pytest.mark.parametrize("vendor", ["openai", "groq"])
async def test_a_stream_that_sends_the_whole_answer_at_once_is_read_whole(
    make_provider: MakeProvider, fake_llm: FakeLLM, vendor: str
) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    fake_llm.script("m", Behaviour(text=text))
    events: list[StreamEvent] = []

    await collect(make_provider("openai" if vendor == "openai" else "groq"), chat("m"), events)

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    assert isinstance(events[-1], Finished)


async def test_a_malformed_chunk_mid_read_is_a_bad_response_after_the_text_before_it(
    make_provider: MakeProvider, fake_llm: FakeLLM
) -> None:
    fake_llm.script("m", Behaviour(text="a b c d e f", malformed_after=4))
    events: list[StreamEvent] = []

    with pytest.raises(ProviderBadResponse, match="malformed stream chunk"):
        await collect(make_provider("openai"), chat("m"), events)

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "a b c d "
