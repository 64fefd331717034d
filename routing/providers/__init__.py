"""LLM providers: the streaming Protocol, its value types and the price catalog.

The SDK adapters live in their own modules (`openai_compat`, `anthropic_messages`,
`groq_chat`) and are imported only where a provider is built: importing the three SDKs costs
seconds of CPU, which commands that never call a model should not pay."""

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

__all__ = [
    "DEFAULT_CATALOG",
    "ChatMessage",
    "ChatRequest",
    "ChatRole",
    "FinishReason",
    "Finished",
    "LLMProvider",
    "ModelSpec",
    "ProviderSettings",
    "StreamEvent",
    "TextDelta",
    "Usage",
    "lookup",
]
