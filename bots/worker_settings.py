"""Settings of the message pipeline's shared stores and workers, read once from the environment."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bots.chat_state import ChatSettings
from bots.history import HistorySettings
from bots.limits import LimitSettings
from bots.queue import QueueSettings
from routing.errors import ConfigError
from routing.settings import ENV_PREFIX, describe_validation_error

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class WorkerSettings(BaseSettings):
    """Where the queue and per-chat state live, and how workers consume it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_by_name=True
    )

    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis for the queue, chat state, history and limits, shared by every web "
        "and worker process (redis://, rediss:// or unix://). Unset: everything lives in one "
        "process's memory and queued messages are lost when it stops.",
    )
    redis_key_prefix: str = Field(
        default="",
        max_length=64,
        description="Prepended to every key of the message pipeline and of the provider "
        "breakers, so several deployments (or test runs) can share one Redis.",
    )
    worker_concurrency: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Turns one worker process answers at once (turns wait on the LLM, so this "
        "is I/O-bound: at 16 a loaded worker queued turns while using a quarter of a core).",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=20.0,
        gt=0,
        description="On SIGTERM a worker stops reading and lets in-flight turns finish for this "
        "long; turns still running are cut and left for another worker to redeliver.",
    )
    queue_min_idle_seconds: float = Field(
        default=90.0,
        gt=0,
        description="A queued message pending this long without a heartbeat (its worker died) "
        "is taken over by another worker.",
    )
    queue_claim_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often each worker looks for such messages."
    )
    chat_lock_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A dead worker's chat lock expires after this long; must stay below "
        "TIERBOT_QUEUE_MIN_IDLE_SECONDS. The holder renews it every third of it.",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="A message handed out more often than this goes to the dead-letter list.",
    )
    rate_limit_per_minute: int = Field(
        default=20, ge=1, description="Turns one user may start per sliding minute."
    )
    daily_budget_usd: float = Field(
        default=1.0, ge=0, description="LLM spend allowed per user per UTC day, in USD."
    )
    history_max_turns: int = Field(
        default=50, ge=2, description="Turns of each chat kept as conversation history."
    )
    history_ttl_hours: float = Field(
        default=168.0,
        gt=0,
        description="A chat's history is forgotten this long after its last turn.",
    )
    admin_host: str = Field(
        default="127.0.0.1", description="Address of a worker process's health listener."
    )
    admin_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        description="Port of a worker process's health listener (/healthz, /readyz).",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(_REDIS_SCHEMES):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _lock_below_idle(self) -> Self:
        if self.chat_lock_ttl_seconds >= self.queue_min_idle_seconds:
            raise ValueError(
                f"{ENV_PREFIX}CHAT_LOCK_TTL_SECONDS must be below "
                f"{ENV_PREFIX}QUEUE_MIN_IDLE_SECONDS"
            )
        return self

    def queue(self) -> QueueSettings:
        """The queue's settings."""
        return QueueSettings(
            min_idle_s=self.queue_min_idle_seconds,
            claim_interval_s=self.queue_claim_interval_seconds,
        )

    def chat(self) -> ChatSettings:
        """The chat gate's settings (see `ChatSettings.for_queue`)."""
        return ChatSettings.for_queue(
            self.queue(), lock_ttl_s=self.chat_lock_ttl_seconds, max_deliveries=self.max_deliveries
        )

    def limits(self) -> LimitSettings:
        """The per-user limits."""
        return LimitSettings(
            messages_per_window=self.rate_limit_per_minute,
            window_s=60.0,
            daily_usd=self.daily_budget_usd,
        )

    def history(self) -> HistorySettings:
        """The history store's settings."""
        return HistorySettings(
            max_turns=self.history_max_turns, ttl_s=self.history_ttl_hours * 3600
        )


def load_worker_settings() -> WorkerSettings:
    """Read the settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        message = describe_validation_error(exc, ENV_PREFIX)
        raise ConfigError(message.replace(f"{ENV_PREFIX}REDIS_URL", "REDIS_URL")) from None
