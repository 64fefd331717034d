"""Shared pieces of the webhook tests: credentials, a recording Enqueue, request builders."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bots.channel_settings import ChannelSettings
from bots.errors import QueueUnavailable
from bots.metrics import Metrics
from bots.types import InboundMessage
from bots.webhooks import WEBHOOKS, Enqueue, IgnoredUpdates, add_webhook_routes

BOT_TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
TG_SECRET = "tg-secret_0123456789"
ACCESS_TOKEN = "EAAFakeAccessToken"
APP_SECRET = "wa-app-secret-f00d"
VERIFY_TOKEN = "verify-me-please"
PHONE_ID = "1122334455667"
WA_ID = "4915112345678"
BSUID = "DE.1410018717833190"
USER_TEXT = "my private question about my health"

Client = TestClient[web.Request, web.Application]
CLOCK = 1234.5
"""What the injected clock says; updates without a date are stamped with it."""


class RecordingQueue:
    """A test double of the injected `Enqueue`: records calls, dedupes, can fail or hang."""

    def __init__(self) -> None:
        self.calls: list[tuple[InboundMessage, float]] = []
        self.fail_after: int | None = None
        self.hang = False
        self._seen: set[str] = set()

    @property
    def messages(self) -> list[InboundMessage]:
        return [message for message, _ in self.calls]

    async def __call__(self, message: InboundMessage, ttl_s: float, /) -> bool:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise QueueUnavailable("redis refused the connection")
        self.calls.append((message, ttl_s))
        fresh = message.dedupe_key not in self._seen
        self._seen.add(message.dedupe_key)
        return fresh


def channels(*, telegram: bool = True, whatsapp: bool = True) -> ChannelSettings:
    values: dict[str, str] = {}
    if telegram:
        values |= {"telegram_bot_token": BOT_TOKEN, "telegram_webhook_secret": TG_SECRET}
    if whatsapp:
        values |= {
            "whatsapp_access_token": ACCESS_TOKEN,
            "whatsapp_app_secret": APP_SECRET,
            "whatsapp_verify_token": VERIFY_TOKEN,
            "whatsapp_phone_number_id": PHONE_ID,
        }
    return ChannelSettings.model_validate(values)


async def serve(
    aiohttp_client: AiohttpClient,
    queue: Enqueue,
    settings: ChannelSettings,
    metrics: Metrics | None = None,
) -> Client:
    """Our webhook routes on a fresh app under aiohttp's TestServer, on loopback."""
    app = web.Application()
    add_webhook_routes(
        app,
        channels=settings,
        enqueue=queue,
        id_key=b"log-key",
        metrics=metrics,
        clock=lambda: CLOCK,
    )
    return await aiohttp_client(app)


def duplicates(metrics: Metrics, channel: str) -> float | None:
    """What `tierbot_duplicates_dropped_total` says for `channel`."""
    labels = {"channel": channel}
    return metrics.registry.get_sample_value("tierbot_duplicates_dropped_total", labels)


def ignored(client: Client) -> IgnoredUpdates:
    return client.app[WEBHOOKS].ignored


def tg_update(update_id: int = 100, text: str = USER_TEXT) -> bytes:
    chat = {"id": 4242, "type": "private"}
    sender = {"id": 4242, "is_bot": False, "first_name": "Ada"}
    message = {"message_id": 1, "date": 1_700_000_000, "chat": chat, "from": sender, "text": text}
    return json.dumps({"update_id": update_id, "message": message}).encode()


async def tg_post(client: Client, body: bytes, secret: str | None = TG_SECRET) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with client.post("/telegram/webhook", data=io.BytesIO(body), headers=headers) as response:
        return response.status


def wa_msg(wamid: str = "wamid.A", **fields: object) -> dict[str, object]:
    message: dict[str, object] = {
        "from": WA_ID,
        "id": wamid,
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": USER_TEXT},
    }
    message.update(fields)
    return message


def wa_value(
    messages: list[dict[str, object]] | None = None, statuses: list[dict[str, object]] | None = None
) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": WA_ID}],
        "messages": messages or [],
        "statuses": statuses or [],
    }


def wa_body(*values: dict[str, object], entries: int = 1) -> bytes:
    changes = [{"field": "messages", "value": value} for value in values]
    entry = [{"id": "waba", "changes": changes} for _ in range(entries)]
    return json.dumps({"object": "whatsapp_business_account", "entry": entry}).encode()


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def wa_post(client: Client, body: bytes, signature: str | None = "") -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature or sign(body)
    async with client.post("/whatsapp/webhook", data=io.BytesIO(body), headers=headers) as response:
        return response.status


def handshake(
    mode: str | None = "subscribe",
    token: str | None = VERIFY_TOKEN,
    challenge: str | None = "1158201444",
) -> dict[str, str]:
    params = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}
    return {name: value for name, value in params.items() if value is not None}
