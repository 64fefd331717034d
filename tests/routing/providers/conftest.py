"""Fixtures for provider tests: a fake LLM server and adapters of each vendor pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr

from routing.providers import LLMProvider, ProviderSettings
from routing.providers.anthropic_messages import AnthropicProvider
from routing.providers.groq_chat import GroqProvider
from routing.providers.openai_compat import OpenAICompatProvider
from tests.fakes.llm import FakeLLM
from tests.routing.providers.support import API_KEY, VENDORS, MakeProvider, Vendor, base_url_for


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLM]:
    """A fake OpenAI/Anthropic/Groq server on 127.0.0.1, port chosen by the OS."""
    async with FakeLLM(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def make_provider(fake_llm: FakeLLM) -> AsyncIterator[MakeProvider]:
    """Build adapters against `fake_llm`; every one is closed when the test ends."""
    made: list[LLMProvider] = []
    constructors: dict[Vendor, Callable[[ProviderSettings], LLMProvider]] = {
        "openai": OpenAICompatProvider,
        "anthropic": AnthropicProvider,
        "groq": GroqProvider,
    }

    def make(
        vendor: Vendor,
        *,
        api_key: str = API_KEY,
        idle_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        base_url: str | None = None,
    ) -> LLMProvider:
        settings = ProviderSettings(
            name=vendor,
            base_url=base_url or base_url_for(vendor, fake_llm.url),
            api_key=SecretStr(api_key),
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
        )
        provider = constructors[vendor](settings)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest) -> Vendor:
    """Each vendor in turn, for the contract suite."""
    value: Vendor = request.param
    return value


@pytest.fixture
def provider(make_provider: MakeProvider, vendor: Vendor) -> LLMProvider:
    """An adapter of the current vendor with the default settings."""
    return make_provider(vendor)
