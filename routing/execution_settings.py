"""Execution settings: tier chains, prices, deadlines and provider credentials from env."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from routing.errors import ConfigError
from routing.settings import (
    ENV_PREFIX,
    describe_settings_error,
    describe_validation_error,
    split_csv,
)

ProviderKind = Literal["openai", "anthropic", "groq"]

DEFAULT_CHAINS: dict[str, list[str]] = {
    "fast": ["groq:llama-3.1-8b-instant", "openai:gpt-4o-mini"],
    "mid": ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"],
    "frontier": ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"],
}


class ModelSpecSetting(BaseModel):
    """An operator's price and context window for one model (overrides the built-in catalog)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    context_window: int = Field(gt=0)


class ExtraProvider(BaseModel):
    """Another OpenAI-compatible server (vLLM, Ollama, Together, Fireworks, ...)."""

    base_url: str
    api_key: SecretStr = SecretStr("unused")
    legacy_max_tokens: bool = False


class ExecutionSettings(BaseSettings):
    """How answers are produced: which models per tier, time limits, retries, prices."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    chains: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_CHAINS))
    model_specs: dict[str, ModelSpecSetting] = Field(default_factory=dict)
    extra_providers: dict[str, ExtraProvider] = Field(default_factory=dict)
    ttft_slo_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 10.0, 10.0]
    )
    inter_token_timeout_seconds: float = Field(default=15.0, gt=0)
    total_timeout_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_budget_ratio: float = Field(default=0.2, ge=0, le=1)
    retry_non_answers: bool = True
    max_output_tokens: int = Field(default=1024, ge=1)
    max_retries_per_question: int = Field(default=2, ge=0, le=5)

    _split = field_validator("ttft_slo_seconds", mode="before")(split_csv)

    @field_validator("ttft_slo_seconds")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(v <= 0 for v in value):
            raise ValueError("needs one positive number of seconds per tier")
        return value

    @field_validator("chains")
    @classmethod
    def _links_named(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for tier, links in value.items():
            for link in links:
                provider, _, model = link.partition(":")
                if not provider or not model:
                    raise ValueError(f"tier {tier!r}: {link!r} is not provider:model")
        return value


class ProviderCredentials(BaseSettings):
    """The providers' own variables: keys and base URLs under their ecosystem names."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    groq_api_key: SecretStr | None = None
    groq_base_url: str = "https://api.groq.com"

    def key_for(self, kind: ProviderKind) -> SecretStr | None:
        """The key of a built-in provider, or None when it is not configured."""
        key = {
            "openai": self.openai_api_key,
            "anthropic": self.anthropic_api_key,
            "groq": self.groq_api_key,
        }[kind]
        return key if key is not None and key.get_secret_value() else None

    def base_url_for(self, kind: ProviderKind) -> str:
        """The base URL of a built-in provider."""
        return {
            "openai": self.openai_base_url,
            "anthropic": self.anthropic_base_url,
            "groq": self.groq_base_url,
        }[kind]


def load_execution_settings() -> tuple[ExecutionSettings, ProviderCredentials]:
    """Read both from the environment; raise ConfigError naming the bad variable."""
    try:
        return ExecutionSettings(), ProviderCredentials()
    except ValidationError as exc:
        prefix = ENV_PREFIX if exc.title == "ExecutionSettings" else ""
        raise ConfigError(describe_validation_error(exc, prefix)) from None
    except SettingsError as exc:
        raise ConfigError(describe_settings_error(exc, ENV_PREFIX)) from None
