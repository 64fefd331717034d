"""Settings of the admin listener's access, read once from `TIERBOT_ADMIN_*` variables.

The listener's address is `TIERBOT_ADMIN_HOST`/`TIERBOT_ADMIN_PORT` of `WorkerSettings`
(the same listener a worker process already serves its probes on); this adds its token.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.errors import ConfigError
from routing.settings import ENV_PREFIX, describe_validation_error

TOKEN_VARIABLE = f"{ENV_PREFIX}ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16


class AdminSettings(BaseSettings):
    """Who may open the admin pages and `/metrics`, and how long a login lasts."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_by_name=True
    )

    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the admin listener (pages and /metrics), at least 16 "
        "characters. Unset: the admin listener refuses to start.",
    )
    admin_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long an admin login cookie lasts."
    )
    admin_secure_cookie: bool = Field(
        default=False,
        description="Mark the login cookie Secure (set it when a TLS proxy fronts the listener).",
    )

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    def token(self) -> SecretStr:
        """The token; raise ConfigError saying which variable to set when there is none."""
        if self.admin_token is None or not self.admin_token.get_secret_value():
            raise ConfigError(
                f"{TOKEN_VARIABLE} is not set: the admin listener (pages and /metrics) needs a "
                f"token of at least {MIN_TOKEN_LENGTH} characters"
            )
        return self.admin_token


def load_admin_settings() -> AdminSettings:
    """Read the settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return AdminSettings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, ENV_PREFIX)) from None
