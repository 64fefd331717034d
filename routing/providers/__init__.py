"""LLM providers: a streaming Protocol, adapters for OpenAI(-compatible), Anthropic, Groq."""

from routing.providers.anthropic_messages import AnthropicProvider
from routing.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatRole,
    Finished,
    FinishReason,
    LLMProvider,
    ProviderSettings,
    StreamEvent,
    TextDelta,
    Usage,
)
from routing.providers.catalog import DEFAULT_CATALOG, ModelSpec, lookup
from routing.providers.groq_chat import GroqProvider
from routing.providers.openai_compat import OpenAICompatProvider

__all__ = [
    "DEFAULT_CATALOG",
    "AnthropicProvider",
    "ChatMessage",
    "ChatRequest",
    "ChatRole",
    "FinishReason",
    "Finished",
    "GroqProvider",
    "LLMProvider",
    "ModelSpec",
    "OpenAICompatProvider",
    "ProviderSettings",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "lookup",
]
