"""Feedback-log settings, read once from `DATABASE_URL` and `TIERBOT_*` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from feedback.errors import FeedbackConfigError

ENV_PREFIX = "TIERBOT_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///tierbot.sqlite3"
DEV_ID_HASH_KEY = "tierbot-dev-key-do-not-use-in-production"

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class FeedbackSettings(BaseSettings):
    """Where the log lives, how ids are hashed, how long text is kept, and how writes batch."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_by_name=True
    )

    database_url: SecretStr = Field(
        default=SecretStr(DEFAULT_DATABASE_URL), validation_alias="DATABASE_URL"
    )
    id_hash_key: SecretStr = SecretStr(DEV_ID_HASH_KEY)
    id_hash_key_version: int = Field(default=1, ge=1, le=999)
    text_retention_days: int = Field(default=30, ge=0)
    feedback_batch_size: int = Field(default=200, ge=1, le=10_000)
    feedback_flush_interval_s: float = Field(default=1.0, gt=0.0)
    feedback_buffer_limit: int = Field(default=10_000, ge=1)
    feedback_retry_max_s: float = Field(default=30.0, gt=0.0)
    feedback_write_timeout_s: float = Field(default=10.0, gt=0.0)
    feedback_shutdown_timeout_s: float = Field(default=10.0, gt=0.0)
    feedback_query_timeout_s: float = Field(default=120.0, gt=0.0)
    feedback_purge_interval_s: float = Field(default=3600.0, gt=0.0)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: SecretStr) -> SecretStr:
        try:
            url = make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError("not a database URL") from None
        driver = _DRIVERS.get(url.drivername)
        if driver is None:
            raise ValueError(
                f"unsupported database {url.drivername!r}; use sqlite+aiosqlite:///FILE "
                "or postgresql+asyncpg://USER@HOST/DB"
            )
        return SecretStr(url.set(drivername=driver).render_as_string(hide_password=False))

    @field_validator("id_hash_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def url(self) -> URL:
        """The SQLAlchemy URL, driver normalised to aiosqlite or asyncpg."""
        return make_url(self.database_url.get_secret_value())

    @property
    def database_display(self) -> str:
        """The database URL with any password masked, for logs and `policy show`."""
        return self.url.render_as_string(hide_password=True)

    @property
    def uses_dev_key(self) -> bool:
        """True while the id-hash key is the public development default."""
        return self.id_hash_key.get_secret_value() == DEV_ID_HASH_KEY


def _variable(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"{ENV_PREFIX}{field.upper()}"


def load_feedback_settings() -> FeedbackSettings:
    """Read the settings from the environment; raise FeedbackConfigError naming the variable."""
    try:
        return FeedbackSettings()
    except ValidationError as exc:
        problems = [
            f"{_variable(str(err['loc'][0])) if err['loc'] else 'a setting'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise FeedbackConfigError("invalid configuration: " + "; ".join(problems)) from None
