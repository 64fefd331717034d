"""The `tierbot webhook set|info|delete` commands: manage the Telegram webhook via aiogram."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from typing import IO

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import WebhookInfo

from bots.channel_settings import ChannelSettings

ALLOWED_UPDATES = (
    "message",
    "edited_message",
    "callback_query",
    "message_reaction",
    "stopped_message_generation",
)
"""Passed explicitly on every `setWebhook`: an omitted list keeps the old one, and an empty
list leaves out `message_reaction`."""
CALL_TIMEOUT_S = 30.0
DEFAULT_MAX_CONNECTIONS = 40


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `webhook set|info|delete` to the `tierbot` command line."""
    webhook = groups.add_parser("webhook", help="the Telegram webhook registration")
    commands = webhook.add_subparsers(dest="command", required=True)
    set_cmd = commands.add_parser("set", help="point Telegram at our webhook, with the secret")
    set_cmd.add_argument("url", help="public HTTPS URL of /telegram/webhook (port 443/80/88/8443)")
    set_cmd.add_argument(
        "--max-connections",
        type=_connections,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"parallel deliveries, 1-100 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    commands.add_parser("info", help="show the webhook, its pending updates and last error")
    delete = commands.add_parser("delete", help="remove the webhook (pending updates are kept)")
    delete.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="also discard the updates Telegram holds for us (they are lost)",
    )


def run(settings: ChannelSettings, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run the parsed `webhook` command; return the exit status."""
    return asyncio.run(webhook_command(settings, args, out, err))


async def webhook_command(
    settings: ChannelSettings, args: argparse.Namespace, out: IO[str], err: IO[str]
) -> int:
    """Run `webhook set|info|delete` against the Bot API at `TELEGRAM_API_BASE`."""
    token, secret = settings.telegram_bot_token, settings.telegram_webhook_secret
    if token is None or secret is None:
        err.write("tierbot: TELEGRAM_BOT_TOKEN is not set: the Telegram channel is off\n")
        return 2
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    try:
        async with (
            Bot(token.get_secret_value(), session=session) as bot,
            asyncio.timeout(CALL_TIMEOUT_S),
        ):
            out.write(await _command(bot, args, secret.get_secret_value()))
    except TelegramAPIError as exc:
        err.write(f"tierbot: telegram: {str(exc).replace(token.get_secret_value(), '<token>')}\n")
        return 1
    except TimeoutError:
        err.write(f"tierbot: telegram: no answer within {CALL_TIMEOUT_S:g} s\n")
        return 1
    return 0


async def _command(bot: Bot, args: argparse.Namespace, secret: str) -> str:
    match args.command:
        case "set":
            await bot.set_webhook(
                url=args.url,
                secret_token=secret,
                allowed_updates=list(ALLOWED_UPDATES),
                max_connections=args.max_connections,
                drop_pending_updates=False,
            )
            return f"webhook set: {args.url} (max_connections={args.max_connections})\n"
        case "info":
            return describe(await bot.get_webhook_info())
        case _:
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
            dropped = " and dropped its pending updates" if args.drop_pending_updates else ""
            return f"webhook deleted{dropped}\n"


def describe(info: WebhookInfo) -> str:
    """`getWebhookInfo` as lines of `name: value`, with a warning when updates are left out."""
    lines = [
        f"url: {info.url or '(none: no webhook set)'}",
        f"pending_update_count: {info.pending_update_count}",
        f"max_connections: {info.max_connections if info.max_connections is not None else '-'}",
        f"allowed_updates: {', '.join(info.allowed_updates or []) or '(default)'}",
        f"last_error: {_last_error(info.last_error_date, info.last_error_message)}",
    ]
    if info.last_synchronization_error_date is not None:
        lines.append(f"last_synchronization_error: {_when(info.last_synchronization_error_date)}")
    missing = [name for name in ALLOWED_UPDATES if name not in (info.allowed_updates or [])]
    if info.url and missing:
        lines.append(f"warning: not subscribed to {', '.join(missing)}; run `tierbot webhook set`")
    return "\n".join(lines) + "\n"


def _last_error(date: dt.datetime | None, message: str | None) -> str:
    if date is None and not message:
        return "none"
    return f"{_when(date) if date else '?'} {message or ''}".rstrip()


def _when(date: dt.datetime) -> str:
    return date.astimezone(dt.UTC).isoformat(timespec="seconds")


def _connections(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return number
