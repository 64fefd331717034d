"""Channel settings from the environment: channels off by default, all-or-nothing, clear errors."""

from __future__ import annotations

import pytest

from bots.channel_settings import ChannelSettings, load_channel_settings
from routing.errors import ConfigError

TELEGRAM = {
    "TELEGRAM_BOT_TOKEN": "123456789:AAFakeTokenForTests_0123456789abcdef",
    "TELEGRAM_WEBHOOK_SECRET": "tg-secret_0123456789",
}
WHATSAPP = {
    "WHATSAPP_ACCESS_TOKEN": "EAAFakeAccessToken",
    "WHATSAPP_APP_SECRET": "wa-app-secret-f00d",
    "WHATSAPP_VERIFY_TOKEN": "verify-me-please",
    "WHATSAPP_PHONE_NUMBER_ID": "1122334455667",
}


@pytest.fixture(autouse=True)
def _no_channel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ChannelSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def setenv(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_without_credentials_both_channels_are_off() -> None:
    settings = load_channel_settings()

    assert (settings.telegram_enabled, settings.whatsapp_enabled) == (False, False)
    assert (settings.telegram_api_url, settings.whatsapp_api_url) == (
        "https://api.telegram.org",
        "https://graph.facebook.com/v26.0",
    )


def test_full_credentials_turn_both_channels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, TELEGRAM | WHATSAPP | {"TELEGRAM_API_BASE": "http://127.0.0.1:8081/"})

    settings = load_channel_settings()

    assert (settings.telegram_enabled, settings.whatsapp_enabled) == (True, True)
    assert settings.telegram_api_url == "http://127.0.0.1:8081"
    assert settings.whatsapp_phone_number_id == WHATSAPP["WHATSAPP_PHONE_NUMBER_ID"]


def test_secrets_are_masked_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, TELEGRAM | WHATSAPP)

    shown = repr(load_channel_settings())

    secrets = [*TELEGRAM.values(), *list(WHATSAPP.values())[:3]]
    assert [secret for secret in secrets if secret in shown] == []


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    setenv(monkeypatch, dict.fromkeys([*TELEGRAM, *WHATSAPP], ""))

    assert load_channel_settings().telegram_enabled is False


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"TELEGRAM_BOT_TOKEN": TELEGRAM["TELEGRAM_BOT_TOKEN"]}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"TELEGRAM_WEBHOOK_SECRET": "abc"}, "TELEGRAM_BOT_TOKEN"),
        (
            {"WHATSAPP_ACCESS_TOKEN": "t", "WHATSAPP_APP_SECRET": "s"},
            "WHATSAPP_VERIFY_TOKEN, WHATSAPP_PHONE_NUMBER_ID",
        ),
        (TELEGRAM | {"TELEGRAM_BOT_TOKEN": "no-colon"}, "TELEGRAM_BOT_TOKEN"),
        (TELEGRAM | {"TELEGRAM_WEBHOOK_SECRET": "has spaces"}, "TELEGRAM_WEBHOOK_SECRET"),
        (TELEGRAM | {"TELEGRAM_WEBHOOK_SECRET": "x" * 257}, "TELEGRAM_WEBHOOK_SECRET"),
        (WHATSAPP | {"WHATSAPP_PHONE_NUMBER_ID": "+49 151"}, "WHATSAPP_PHONE_NUMBER_ID"),
        (TELEGRAM | {"TELEGRAM_API_BASE": "not a url"}, "TELEGRAM_API_BASE"),
    ],
    ids=[
        "token-without-secret",
        "secret-without-token",
        "whatsapp-half",
        "token-shape",
        "secret-chars",
        "secret-length",
        "phone-id",
        "url",
    ],
)
def test_bad_configuration_names_the_variable_and_hides_the_value(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str
) -> None:
    setenv(monkeypatch, values)

    with pytest.raises(ConfigError) as caught:
        load_channel_settings()

    assert named in str(caught.value)
    assert [
        value for value in values.values() if len(value) > 4 and value in str(caught.value)
    ] == []
