"""Fixtures for the web app tests: a fake LLM, our app in front of it, and OpenAI SDK clients."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from bots.api_settings import load_api_settings
from bots.assembly import LLMStack, build_llm_stack
from bots.web import create_app
from routing.execution_settings import load_execution_settings
from routing.policy import build_policy
from routing.router import Router
from routing.settings import load_routing_settings
from routing.signals.complexity import load_complexity_model
from tests.fakes.llm import FakeLLM

LLM_KEY = "sk-fake-llm-5d2c8e1f"
"""The key the fake LLM accepts (tierbot's provider key)."""
API_KEYS = ("sk-tierbot-alpha-1b9e", "sk-tierbot-beta-77c3")
"""The keys our API accepts."""
CHAINS = {
    "fast": ["groq:fast-groq", "openai:fast-gpt"],
    "mid": ["anthropic:mid-claude"],
    "frontier": ["openai:top-gpt"],
}
"""Every chain model is a fake one; the tests script them per model."""
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi please"}]


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """Our app running on loopback."""

    url: str
    app: web.Application

    @property
    def v1(self) -> str:
        """The base URL an OpenAI SDK takes."""
        return f"{self.url}/v1"

    def client(self, key: str | None = API_KEYS[0]) -> openai.AsyncOpenAI:
        """An async SDK client (close it: `async with`); no retries, so a 503 is seen once."""
        return openai.AsyncOpenAI(
            base_url=self.v1, api_key=key or "none", max_retries=0, timeout=10.0
        )

    def sync_client(self, key: str = API_KEYS[0]) -> openai.OpenAI:
        """A sync SDK client, to be used (and closed) inside `asyncio.to_thread`."""
        return openai.OpenAI(base_url=self.v1, api_key=key, max_retries=0, timeout=10.0)


class Serve(Protocol):
    """Starts our app with these variables set on top of the defaults (an empty value unsets)."""

    async def __call__(
        self, env: Mapping[str, str] | None = None, *, offline: bool = False
    ) -> Served: ...


def build_app(
    *, offline: bool, edit: Callable[[LLMStack], LLMStack] = lambda stack: stack
) -> web.Application:
    """Our app from the environment, through the real settings loaders and builders; `edit`
    may change the LLM stack once it is built."""
    policy = build_policy(load_routing_settings())
    execution, credentials = load_execution_settings()
    stack = functools.partial(
        build_llm_stack,
        policy=policy,
        settings=execution,
        credentials=credentials,
        offline=offline,
        redis=None,
    )
    return create_app(
        router=Router(policy=policy, complexity=load_complexity_model()),
        policy=policy,
        execution=execution,
        api=load_api_settings(),
        llm=lambda: edit(stack()),
    )


async def collect(
    served: Served, model: str, messages: list[ChatCompletionMessageParam] = HELLO
) -> tuple[dict[str, str], list[ChatCompletionChunk]]:
    """Stream one answer with the async SDK; return the response headers and every chunk."""
    async with (
        served.client() as client,
        client.chat.completions.with_streaming_response.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        ) as response,
    ):
        chunks = [chunk async for chunk in await response.parse()]
        return dict(response.headers), chunks


async def error_code(response: aiohttp.ClientResponse) -> object:
    """The `error.code` of an OpenAI-shaped error body."""
    body = await response.json()
    return body["error"]["code"]


async def read_into(stream: openai.AsyncStream[ChatCompletionChunk], seen: list[str]) -> None:
    """Read a stream's text into `seen`, so a test also sees the text before a raise."""
    async for chunk in stream:
        seen.append(chunk.choices[0].delta.content or "")


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    """The answer's text, from its chunks."""
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """One fake OpenAI/Anthropic/Groq server on 127.0.0.1."""
    async with FakeLLM(api_key=LLM_KEY) as fake:
        yield fake


@pytest.fixture
async def serve(fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Serve]:
    """Build the app through the real settings loaders and serve it on 127.0.0.1, port 0."""
    servers: list[TestServer] = []
    defaults = {
        "OPENAI_API_KEY": LLM_KEY,
        "OPENAI_BASE_URL": fake_llm.openai_url,
        "ANTHROPIC_API_KEY": LLM_KEY,
        "ANTHROPIC_BASE_URL": fake_llm.url,
        "GROQ_API_KEY": LLM_KEY,
        "GROQ_BASE_URL": fake_llm.url,
        "TIERBOT_CHAINS": json.dumps(CHAINS),
        "TIERBOT_API_KEYS": ",".join(API_KEYS),
    }

    async def start(env: Mapping[str, str] | None = None, *, offline: bool = False) -> Served:
        for name, value in (defaults | dict(env or {})).items():
            if value:
                monkeypatch.setenv(name, value)
            else:
                monkeypatch.delenv(name, raising=False)
        app = build_app(offline=offline)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return Served(url=str(server.make_url("")).rstrip("/"), app=app)

    yield start
    for server in servers:
        await server.close()
