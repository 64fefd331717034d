"""Shared values and helpers of the provider tests: the key, requests, stream collection."""

from __future__ import annotations

from typing import Literal, Protocol

from routing.providers import ChatMessage, ChatRequest, LLMProvider, StreamEvent

API_KEY = "sk-fake-7c1e9a4b2d8f6e3a5b0c"
"""The key the fake accepts; no error text may ever contain it."""

Vendor = Literal["openai", "anthropic", "groq"]
VENDORS: tuple[Vendor, ...] = ("openai", "anthropic", "groq")


class MakeProvider(Protocol):
    """Builds an adapter pointed at the fake; the fixture closes it after the test."""

    def __call__(
        self,
        vendor: Vendor,
        *,
        api_key: str = ...,
        idle_timeout: float = ...,
        connect_timeout: float = ...,
        base_url: str | None = ...,
    ) -> LLMProvider: ...


def base_url_for(vendor: Vendor, root: str) -> str:
    """The base URL each SDK expects for a server whose root is `root`."""
    return f"{root}/v1" if vendor == "openai" else root


def chat(
    model: str, *, system: str | None = "Answer briefly.", user: str = "Hi there"
) -> ChatRequest:
    """A small request: an optional system message and one user message."""
    messages = [] if system is None else [ChatMessage(role="system", content=system)]
    messages.append(ChatMessage(role="user", content=user))
    return ChatRequest(model=model, messages=tuple(messages), max_tokens=64)


async def collect(provider: LLMProvider, request: ChatRequest, into: list[StreamEvent]) -> None:
    """Consume a stream into `into`, so a test also sees the events that came before a raise."""
    async for event in provider.stream(request):
        into.append(event)
