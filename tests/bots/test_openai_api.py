"""The OpenAI-compatible API, driven by the official openai SDK against a fake LLM on loopback."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from bots.web import is_loopback
from routing.executor import CONTINUE_PROMPT
from tests.bots.conftest import (
    API_KEYS,
    HELLO,
    Serve,
    build_app,
    collect,
    error_code,
    read_into,
    text_of,
)
from tests.fakes.llm import Behaviour, FakeLLM, tokens, words

FAST = "Hello from the fast model, nice to meet you."


async def test_auto_streams_the_fast_tier_with_headers_and_usage(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    fake_llm.script("fast-groq", Behaviour(text=FAST))
    headers, chunks = await collect(await serve(), "auto")
    assert text_of(chunks) == FAST
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (words("Say hi please"), 9)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert headers["x-tierbot-tier"] == "fast"
    assert headers["x-tierbot-model"] == "fast-groq"
    assert headers["x-tierbot-provider"] == "groq"
    assert headers["x-tierbot-reasons"].split(",")[0] == "base_tier"
    assert headers["content-type"].startswith("text/event-stream")


async def test_sync_client_gets_one_completion_on_a_named_tier(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    fake_llm.script("mid-claude", Behaviour(text="A careful middle answer."))
    served = await serve()

    def call() -> tuple[dict[str, str], ChatCompletion]:
        with served.sync_client() as client:
            raw = client.chat.completions.with_raw_response.create(
                model="mid", messages=HELLO, max_tokens=7, temperature=0.2
            )
            return dict(raw.headers), raw.parse()

    headers, completion = await asyncio.to_thread(call)
    assert completion.choices[0].message.content == "A careful middle answer."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "mid-claude"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)
    assert (headers["x-tierbot-tier"], headers["x-tierbot-model"]) == ("mid", "mid-claude")
    assert (headers["x-tierbot-provider"], headers["x-tierbot-reasons"]) == (
        "anthropic",
        "model_requested",
    )
    assert fake_llm.last("mid-claude").body["max_tokens"] == 7


@pytest.mark.parametrize("model", ["top-gpt", "openai:top-gpt", "frontier"])
async def test_a_concrete_model_or_tier_name_picks_its_tier(
    serve: Serve, fake_llm: FakeLLM, model: str
) -> None:
    async with (await serve()).client() as client:
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    assert raw.parse().model == "top-gpt"
    assert raw.headers["x-tierbot-tier"] == "frontier"
    assert fake_llm.count("top-gpt") == 1


async def test_entitlement_caps_a_requested_tier_unless_the_user_is_premium(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    served = await serve({"TIERBOT_DEFAULT_MAX_TIER": "mid", "TIERBOT_PREMIUM_USERS": "vip-7"})
    async with served.client() as client:
        capped = await client.chat.completions.with_raw_response.create(
            model="frontier", messages=HELLO
        )
        premium = await client.chat.completions.with_raw_response.create(
            model="frontier", messages=HELLO, user="vip-7"
        )
    assert capped.headers["x-tierbot-tier"] == "mid"
    assert capped.headers["x-tierbot-reasons"] == "model_requested,entitlement_cap"
    assert premium.headers["x-tierbot-tier"] == "frontier"


async def test_auto_follows_the_router(serve: Serve, fake_llm: FakeLLM) -> None:
    rules = '[{"pattern": "prove", "min_tier": "frontier"}]'
    messages: list[ChatCompletionMessageParam] = [
        {"role": "developer", "content": "Be rigorous."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Please"}, {"type": "text", "text": "prove it"}],
        },
    ]
    headers, _ = await collect(await serve({"TIERBOT_RULES": rules}), "auto", messages)
    assert headers["x-tierbot-tier"] == "frontier"
    assert "rule" in headers["x-tierbot-reasons"].split(",")
    assert fake_llm.last("top-gpt").body["messages"] == [
        {"role": "system", "content": "Be rigorous."},
        {"role": "user", "content": "Please\nprove it"},
    ]


async def test_models_lists_auto_the_tiers_and_every_chain_model(serve: Serve) -> None:
    async with (await serve()).client(API_KEYS[1]) as client:  # any configured key will do
        models = [m async for m in client.models.list()]
    assert [(m.id, m.owned_by) for m in models] == [
        ("auto", "tierbot"),
        ("fast", "tierbot"),
        ("mid", "tierbot"),
        ("frontier", "tierbot"),
        ("fast-groq", "groq"),
        ("fast-gpt", "openai"),
        ("mid-claude", "anthropic"),
        ("top-gpt", "openai"),
    ]


async def test_an_unknown_model_is_404_and_calls_nothing(serve: Serve, fake_llm: FakeLLM) -> None:
    async with (await serve()).client() as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-9", messages=HELLO)
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert fake_llm.received == []


@pytest.mark.parametrize("key", ["sk-wrong", API_KEYS[1] + "x", None])
async def test_a_bad_key_is_401(serve: Serve, key: str | None) -> None:
    async with (await serve()).client(key) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
    assert caught.value.code == "invalid_api_key"


async def test_without_keys_loopback_is_served_and_proxied_calls_are_not(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bots.web")
    served = await serve({"TIERBOT_API_KEYS": ""})
    assert "TIERBOT_API_KEYS is empty" in caplog.text
    async with served.client(None) as client:
        assert (await client.chat.completions.create(model="auto", messages=HELLO)).choices
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.models.list(extra_headers={"X-Forwarded-For": "203.0.113.9"})
    assert caught.value.code == "loopback_only"


def test_loopback_means_127_slash_8_and_ipv6_localhost() -> None:
    hosts = ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1", "10.0.0.1", "::2", "x", None]
    assert [is_loopback(h) for h in hosts] == [True, True, True, True, False, False, False, False]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "tool", "content": "x", "tool_call_id": "t"}], "messages.0.role"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages.0.content",
        ),
        ([{"role": "system", "content": "only a system prompt"}], None),
        ([], "messages"),
    ],
)
async def test_malformed_messages_are_400_naming_the_field(
    serve: Serve, messages: list[ChatCompletionMessageParam], param: str | None
) -> None:
    async with (await serve()).client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="auto", messages=messages)
    assert caught.value.param == param
    body = caught.value.body
    assert isinstance(body, dict)
    assert str(body["message"]).startswith(param or "messages")


async def test_bad_json_an_oversized_body_and_a_wrong_method_get_openai_errors(
    serve: Serve,
) -> None:
    served = await serve({"TIERBOT_API_MAX_BODY_BYTES": "2048"})
    auth = {"Authorization": f"Bearer {API_KEYS[0]}"}
    url = f"{served.v1}/chat/completions"
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(url, data=b"{not json") as bad:
            assert (bad.status, await error_code(bad)) == (400, "invalid_json")
        async with session.post(url, data=b"x" * 4096) as big:
            assert (big.status, await error_code(big)) == (413, "request_entity_too_large")
        async with session.get(url) as wrong:
            assert (wrong.status, await error_code(wrong)) == (405, "method_not_allowed")


async def test_health_and_readiness(serve: Serve) -> None:
    served = await serve()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.url}/healthz") as health:
            assert (health.status, await health.json()) == (200, {"status": "ok"})
        async with session.get(f"{served.url}/readyz") as ready:
            body = await ready.json()
    assert (ready.status, body["offline"], body["providers"], body["tiers"]) == (
        200,
        False,
        ["anthropic", "groq", "openai"],
        [2, 1, 1],
    )


async def test_not_ready_without_any_usable_model() -> None:
    app = build_app(offline=True, edit=lambda stack: replace(stack, chains=((), (), ())))
    async with (
        TestServer(app, host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
        session.get(server.make_url("/readyz")) as unready,
    ):
        assert (unready.status, (await unready.json())["tiers"]) == (503, [0, 0, 0])


async def test_a_cut_stream_continues_as_one_answer(serve: Serve, fake_llm: FakeLLM) -> None:
    fake_llm.script("fast-groq", Behaviour(text="One two three four five.", cut_after=3))
    fake_llm.script("fast-gpt", Behaviour(text="four five."))
    headers, chunks = await collect(await serve(), "auto")
    assert text_of(chunks) == "One two three four five."
    assert headers["x-tierbot-model"] == "fast-groq"  # the first candidate, before any text
    assert chunks[-2].model == "fast-gpt"  # the finish chunk names who answered
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(tokens("four five."))
    sent = fake_llm.last("fast-gpt").body["messages"]
    assert isinstance(sent, list)
    assert sent[-2:] == [
        {"role": "assistant", "content": "One two three "},
        {"role": "user", "content": CONTINUE_PROMPT},
    ]


FAILING = {"TIERBOT_MAX_ATTEMPTS": "2"}


async def test_a_failed_chain_is_503_as_json_and_before_a_stream(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    for model in ("fast-groq", "fast-gpt"):
        fake_llm.script(model, Behaviour(status=500))
    served = await serve(FAILING | {"TIERBOT_DEFAULT_MAX_TIER": "fast"})
    async with served.client() as client:
        with pytest.raises(openai.APIStatusError) as plain:
            await client.chat.completions.create(model="auto", messages=HELLO)
        with pytest.raises(openai.APIStatusError) as streamed:
            await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
    for caught in (plain, streamed):
        assert (caught.value.status_code, caught.value.code) == (503, "upstream_unavailable")
        assert caught.value.response.headers["x-tierbot-tier"] == "fast"
    reasons = plain.value.response.headers["x-tierbot-reasons"].split(",")
    assert reasons[-1] == "no_answer"
    assert fake_llm.count("fast-groq") + fake_llm.count("fast-gpt") == 4


async def test_a_tier_without_a_usable_model_borrows_the_tier_below(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    served = await serve({"ANTHROPIC_API_KEY": "", "TIERBOT_DEFAULT_MAX_TIER": "mid"})
    async with served.client() as client:
        answer = await client.chat.completions.create(model="mid", messages=HELLO)
    assert answer.choices[0].message.content
    assert [r.model for r in fake_llm.received] == ["fast-groq"]


async def test_a_failure_after_text_ends_the_stream_with_an_error_event(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    fake_llm.script("fast-groq", Behaviour(text="One two three four.", cut_after=2))
    fake_llm.script("fast-gpt", Behaviour(status=500))
    seen: list[str] = []
    async with (await serve(FAILING)).client() as client:
        stream = await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError) as caught:
            await read_into(stream, seen)
    assert "".join(seen) == "One two "
    assert caught.value.code == "upstream_unavailable"


async def test_a_client_that_leaves_cancels_the_generation(serve: Serve, fake_llm: FakeLLM) -> None:
    fake_llm.script("fast-groq", Behaviour(text="word " * 200, tokens_per_second=20))
    async with (await serve()).client() as client:
        stream = await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                break
        await stream.close()
    async with asyncio.timeout(5):
        await fake_llm.disconnected("fast-groq")
    await asyncio.sleep(0.2)
    assert fake_llm.count("fast-gpt") == 0  # no fallback for a caller who is gone


LONG = " ".join(f"token{i}" for i in range(40)) + "."


async def test_a_fast_stream_is_sent_in_batches_after_its_first_text_at_once(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    fake_llm.script("fast-groq", Behaviour(text=LONG, tokens_per_second=1000))
    _, chunks = await collect(await serve({"TIERBOT_API_STREAM_BATCH_MS": "20"}), "auto")
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == LONG
    assert pieces[0] == tokens(LONG)[0]  # the first text is not held back
    assert len(pieces) < len(tokens(LONG)) / 2


async def test_without_batching_every_piece_is_its_own_chunk(
    serve: Serve, fake_llm: FakeLLM
) -> None:
    text = "one two three four five six"
    fake_llm.script("fast-groq", Behaviour(text=text, tokens_per_second=50))
    _, chunks = await collect(await serve({"TIERBOT_API_STREAM_BATCH_MS": "0"}), "auto")
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == tokens(text)
    assert chunks[-1].usage is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"stream": 0},
        {"stream": "yes"},
        {"stream_options": {"include_usage": 1}},
        {"max_tokens": "5"},
        {"n": "1"},
    ],
    ids=str,
)
async def test_booleans_and_integers_must_be_json_ones(fields: dict[str, object]) -> None:
    """Found by schemathesis: pydantic's lax mode took `"stream": 0` and `"max_tokens": "5"`."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    async with (
        TestServer(build_app(offline=True), host="127.0.0.1", port=0) as server,
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/v1/chat/completions"), json=body) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"
