"""`tierbot webhook set|info|delete` against the fake Bot API, through aiogram's real client."""

from __future__ import annotations

import argparse
import io
import socket
from collections.abc import AsyncIterator

import pytest

from bots import webhook_cli
from bots.channel_settings import ChannelSettings
from tests.fakes.telegram import FakeTelegram, Fault

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
SECRET = "tg-secret_0123456789"
URL = "https://bot.example/telegram/webhook"


@pytest.fixture(autouse=True)
def _no_channel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ChannelSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


def settings_for(api_base: str | None) -> ChannelSettings:
    if api_base is None:
        return ChannelSettings.model_validate({})
    return ChannelSettings.model_validate(
        {
            "telegram_bot_token": TOKEN,
            "telegram_webhook_secret": SECRET,
            "telegram_api_base": api_base,
        }
    )


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tierbot")
    webhook_cli.add_parser(parser.add_subparsers(dest="group", required=True))
    return parser.parse_args(argv)


async def run(api_base: str | None, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await webhook_cli.webhook_command(settings_for(api_base), parse(*argv), out, err)
    return status, out.getvalue(), err.getvalue()


async def test_set_registers_the_secret_and_every_update_type_we_handle(
    telegram: FakeTelegram,
) -> None:
    status, out, _ = await run(telegram.url, "webhook", "set", URL, "--max-connections", "20")

    assert (status, out) == (0, f"webhook set: {URL} (max_connections=20)\n")
    assert telegram.calls_to("setWebhook")[0].params == {
        "url": URL,
        "secret_token": SECRET,
        "allowed_updates": [
            "message",
            "edited_message",
            "callback_query",
            "message_reaction",
            "stopped_message_generation",
        ],
        "max_connections": 20,
        "drop_pending_updates": False,
    }


async def test_info_shows_pending_updates_and_the_last_error(telegram: FakeTelegram) -> None:
    await run(telegram.url, "webhook", "set", URL)
    telegram.pending_update_count = 17
    telegram.last_error = (
        1_700_000_000,
        "Wrong response from the webhook: 503 Service Unavailable",
    )

    status, out, _ = await run(telegram.url, "webhook", "info")

    assert (status, out) == (
        0,
        f"url: {URL}\n"
        "pending_update_count: 17\n"
        "max_connections: 40\n"
        "allowed_updates: message, edited_message, callback_query, message_reaction, "
        "stopped_message_generation\n"
        "last_error: 2023-11-14T22:13:20+00:00 Wrong response from the webhook: 503 Service "
        "Unavailable\n",
    )


async def test_info_warns_when_updates_we_handle_are_not_subscribed(
    telegram: FakeTelegram,
) -> None:
    telegram.webhook = {"url": URL, "allowed_updates": ["message"]}

    _, out, _ = await run(telegram.url, "webhook", "info")

    assert out.splitlines()[-2:] == [
        "last_error: none",
        "warning: not subscribed to edited_message, callback_query, message_reaction, "
        "stopped_message_generation; run `tierbot webhook set`",
    ]


async def test_info_without_a_webhook(telegram: FakeTelegram) -> None:
    _, out, _ = await run(telegram.url, "webhook", "info")

    assert out.splitlines() == [
        "url: (none: no webhook set)",
        "pending_update_count: 0",
        "max_connections: -",
        "allowed_updates: (default)",
        "last_error: none",
    ]


@pytest.mark.parametrize(
    ("argv", "out", "pending_after"),
    [
        (("webhook", "delete"), "webhook deleted\n", 5),
        (
            ("webhook", "delete", "--drop-pending-updates"),
            "webhook deleted and dropped its pending updates\n",
            0,
        ),
    ],
)
async def test_delete_keeps_pending_updates_unless_told(
    telegram: FakeTelegram, argv: tuple[str, ...], out: str, pending_after: int
) -> None:
    await run(telegram.url, "webhook", "set", URL)
    telegram.pending_update_count = 5

    assert await run(telegram.url, *argv) == (0, out, "")
    assert (telegram.webhook, telegram.pending_update_count) == ({}, pending_after)


async def test_an_api_error_is_reported_without_the_token(telegram: FakeTelegram) -> None:
    telegram.fail("setWebhook", Fault(status=400, description="Bad Request: bad webhook: " + TOKEN))

    status, out, err = await run(telegram.url, "webhook", "set", "http://insecure.example")

    assert (status, out) == (1, "")
    assert err.startswith("tierbot: telegram: ")
    assert "bad webhook" in err
    assert TOKEN not in err


async def test_an_unreachable_api_is_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    status, _, err = await run(f"http://127.0.0.1:{port}", "webhook", "info")

    assert status == 1
    assert err.startswith("tierbot: telegram: ")


def test_without_telegram_credentials_the_command_refuses() -> None:
    out, err = io.StringIO(), io.StringIO()

    status = webhook_cli.run(settings_for(None), parse("webhook", "info"), out, err)

    assert (status, out.getvalue()) == (2, "")
    assert "TELEGRAM_BOT_TOKEN" in err.getvalue()


@pytest.mark.parametrize("value", ["0", "101", "many"])
def test_max_connections_must_be_1_to_100(value: str) -> None:
    with pytest.raises(SystemExit):
        parse("webhook", "set", URL, "--max-connections", value)
