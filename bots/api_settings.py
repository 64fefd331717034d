"""Settings of the web server and its OpenAI-compatible API, read once from `TIERBOT_API_*`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from routing.errors import ConfigError
from routing.settings import ENV_PREFIX, describe_validation_error

API_ENV_PREFIX = f"{ENV_PREFIX}API_"


def _split_keys(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ApiSettings(BaseSettings):
    """Where the server listens, who may call the API, and how large a request may be."""

    model_config = SettingsConfigDict(env_prefix=API_ENV_PREFIX, extra="ignore", frozen=True)

    keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Bearer keys accepted by `/v1/*`; none means loopback clients only."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    shutdown_grace_seconds: float = Field(default=15.0, gt=0)
    """How long open requests may run on after SIGTERM before they are cut."""
    stream_batch_ms: float = Field(default=10.0, ge=0, le=1000)
    """Shortest gap between two writes of a streamed answer: the text that arrives meanwhile
    goes out as one chunk, which saves a write and a wake-up per token (0: write every piece
    as it comes). The first text is never held back."""

    _split = field_validator("keys", mode="before")(_split_keys)


def load_api_settings() -> ApiSettings:
    """Read the settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return ApiSettings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, API_ENV_PREFIX)) from None
