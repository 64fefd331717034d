"""Credentials and API addresses of the chat channels, read once under their conventional names."""

from __future__ import annotations

import re
from typing import Self

from pydantic import HttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.errors import ConfigError
from routing.settings import describe_validation_error

_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,100}")
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_PHONE_NUMBER_ID = re.compile(r"[0-9]{1,32}")


class ChannelSettings(BaseSettings):
    """A channel is on when its credentials are set, and then all of them must be."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, env_ignore_empty=True)

    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    """Sent back by Telegram in `X-Telegram-Bot-Api-Secret-Token`: 1-256 of A-Z a-z 0-9 _ -."""
    telegram_api_base: HttpUrl = HttpUrl("https://api.telegram.org")
    whatsapp_access_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    """Meta's App Secret: the key of the `X-Hub-Signature-256` HMAC."""
    whatsapp_verify_token: SecretStr | None = None
    """Echoed by Meta in the GET verification handshake."""
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_base: HttpUrl = HttpUrl("https://graph.facebook.com/v26.0")

    @field_validator("telegram_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _BOT_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must look like <digits>:<secret>, as BotFather issues it")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -")
        return value

    @field_validator("whatsapp_phone_number_id")
    @classmethod
    def _phone_number_id_shape(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE_NUMBER_ID.fullmatch(value):
            raise ValueError("must be the numeric id of the business phone number")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        telegram: dict[str, object] = {
            "TELEGRAM_BOT_TOKEN": self.telegram_bot_token,
            "TELEGRAM_WEBHOOK_SECRET": self.telegram_webhook_secret,
        }
        whatsapp: dict[str, object] = {
            "WHATSAPP_ACCESS_TOKEN": self.whatsapp_access_token,
            "WHATSAPP_APP_SECRET": self.whatsapp_app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.whatsapp_verify_token,
            "WHATSAPP_PHONE_NUMBER_ID": self.whatsapp_phone_number_id,
        }
        problems = [problem for values in (telegram, whatsapp) if (problem := _incomplete(values))]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def telegram_enabled(self) -> bool:
        """Telegram is on: the bot token and the webhook secret are set."""
        return self.telegram_bot_token is not None and self.telegram_webhook_secret is not None

    @property
    def whatsapp_enabled(self) -> bool:
        """WhatsApp is on: the access token, app secret, verify token and number id are set."""
        return None not in (
            self.whatsapp_access_token,
            self.whatsapp_app_secret,
            self.whatsapp_verify_token,
            self.whatsapp_phone_number_id,
        )

    @property
    def telegram_api_url(self) -> str:
        """The Bot API base without a trailing slash, as `TelegramAPIServer.from_base` takes it."""
        return str(self.telegram_api_base).rstrip("/")

    @property
    def whatsapp_api_url(self) -> str:
        """The Graph API base (with its version) without a trailing slash."""
        return str(self.whatsapp_api_base).rstrip("/")


def _incomplete(values: dict[str, object]) -> str:
    """Name the unset variables of a channel that is only partly configured; "" otherwise."""
    missing = [name for name, value in values.items() if value is None]
    if not missing or len(missing) == len(values):
        return ""
    given = ", ".join(name for name in values if name not in missing)
    return f"missing {', '.join(missing)}: {given} is set, so set all of the channel's variables"


def load_channel_settings() -> ChannelSettings:
    """Read the settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return ChannelSettings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "")) from None
