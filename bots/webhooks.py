"""The Telegram and WhatsApp webhook endpoints: authenticate, bound, parse, enqueue, answer."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from bots.channel_settings import ChannelSettings
from bots.errors import BadUpdate, QueueUnavailable
from bots.ids import hash_id
from bots.metrics import Metrics
from bots.queue import dedupe_ttl_s
from bots.telegram_ingest import parse_update
from bots.types import Channel, InboundMessage
from bots.whatsapp_ingest import parse_webhook, signature_valid

logger = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
WHATSAPP_PATH = "/whatsapp/webhook"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WHATSAPP_SIGNATURE_HEADER = "X-Hub-Signature-256"
TELEGRAM_MAX_BODY_BYTES = 1024 * 1024
WHATSAPP_MAX_BODY_BYTES = 4 * 1024 * 1024
ENQUEUE_TIMEOUT_S = 1.0
"""A request whose messages are not all queued by then is answered 503, so the platform retries."""
_OK_BODY = b"{}"
_JSON = "application/json"


class Enqueue(Protocol):
    """Durably queue one message unless its dedupe key was seen within `ttl_s` seconds.

    Returns True when queued, False for a duplicate; raises QueueUnavailable when the message
    could not be stored durably. `Queue.enqueue` (bots/queue.py) is one.
    """

    async def __call__(self, message: InboundMessage, ttl_s: float, /) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnoredUpdates:
    """Updates answered 200 but not queued, counted per channel by type (for metrics)."""

    telegram: Counter[str] = field(default_factory=Counter)
    whatsapp: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookContext:
    """What the handlers need, stored on the application under `WEBHOOKS`."""

    channels: ChannelSettings
    enqueue: Enqueue
    ignored: IgnoredUpdates
    id_key: bytes
    """Key of the HMAC that turns chat ids into log-safe identifiers."""
    clock: Callable[[], float]
    metrics: Metrics | None
    """Counts the deliveries refused as duplicates, when given."""


WEBHOOKS = web.AppKey("webhooks", WebhookContext)


def add_webhook_routes(
    app: web.Application,
    *,
    channels: ChannelSettings,
    enqueue: Enqueue,
    id_key: bytes,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
) -> IgnoredUpdates:
    """Serve both webhooks on `app`; a channel without credentials answers 404.

    Returns the ignored-update counters the handlers fill.
    """
    context = WebhookContext(
        channels=channels,
        enqueue=enqueue,
        ignored=IgnoredUpdates(),
        id_key=id_key,
        clock=clock,
        metrics=metrics,
    )
    app[WEBHOOKS] = context
    app.router.add_post(TELEGRAM_PATH, telegram_webhook)
    app.router.add_get(WHATSAPP_PATH, whatsapp_verification)
    app.router.add_post(WHATSAPP_PATH, whatsapp_webhook)
    return context.ignored


async def telegram_webhook(request: web.Request) -> web.Response:
    """`POST /telegram/webhook`: one Update, authenticated by the secret-token header."""
    context = request.config_dict[WEBHOOKS]
    secret = context.channels.telegram_webhook_secret
    if not context.channels.telegram_enabled or secret is None:
        return _not_configured("telegram")
    if not _same(request.headers.get(TELEGRAM_SECRET_HEADER), secret.get_secret_value()):
        logger.info("telegram webhook: wrong or missing secret token")
        return _error(401, "unauthorized")
    raw = await _read_bounded(request, TELEGRAM_MAX_BODY_BYTES)
    if raw is None:
        return _error(413, "request body too large")
    try:
        message = parse_update(raw, received_at=context.clock(), ignored=context.ignored.telegram)
    except BadUpdate as exc:
        logger.info("telegram webhook: bad update: %s", exc)
        return _error(400, "bad update")
    return await _enqueue_all(context, "telegram", () if message is None else (message,))


async def whatsapp_verification(request: web.Request) -> web.Response:
    """`GET /whatsapp/webhook`: Meta's subscription handshake; echo the challenge if ours."""
    context = request.config_dict[WEBHOOKS]
    token = context.channels.whatsapp_verify_token
    if not context.channels.whatsapp_enabled or token is None:
        return _not_configured("whatsapp")
    query = request.query
    challenge = query.get("hub.challenge")
    if (
        query.get("hub.mode") != "subscribe"
        or challenge is None
        or not _same(query.get("hub.verify_token"), token.get_secret_value())
    ):
        logger.info("whatsapp verification refused")
        return web.Response(status=403, text="forbidden")
    return web.Response(text=challenge)


async def whatsapp_webhook(request: web.Request) -> web.Response:
    """`POST /whatsapp/webhook`: a batch of notifications, signed with the App Secret."""
    context = request.config_dict[WEBHOOKS]
    channels = context.channels
    secret = channels.whatsapp_app_secret
    if not channels.whatsapp_enabled or secret is None:
        return _not_configured("whatsapp")
    signature = request.headers.get(WHATSAPP_SIGNATURE_HEADER)
    if signature is None:
        logger.info("whatsapp webhook: missing signature")
        return _error(401, "unauthorized")
    raw = await _read_bounded(request, WHATSAPP_MAX_BODY_BYTES)
    if raw is None:
        return _error(413, "request body too large")
    if not signature_valid(secret.get_secret_value().encode(), raw, signature):
        logger.info("whatsapp webhook: wrong signature")
        return _error(403, "forbidden")
    try:
        messages = parse_webhook(
            raw, phone_number_id=channels.whatsapp_phone_number_id, ignored=context.ignored.whatsapp
        )
    except BadUpdate as exc:
        logger.info("whatsapp webhook: bad notification: %s", exc)
        return _error(400, "bad update")
    return await _enqueue_all(context, "whatsapp", messages)


async def _enqueue_all(
    context: WebhookContext, channel: Channel, messages: Sequence[InboundMessage]
) -> web.Response:
    """200 once every message is durably queued (or was already); 503 otherwise."""
    if not messages:
        return _ok()
    ttl_s = dedupe_ttl_s(channel)
    queued = 0
    try:
        async with asyncio.timeout(ENQUEUE_TIMEOUT_S):
            for message in messages:
                fresh = await context.enqueue(message, ttl_s)
                queued += 1
                _queued(context, channel, message, fresh)
    except (QueueUnavailable, TimeoutError) as exc:
        failed = messages[queued]
        logger.warning(
            "%s webhook: answered 503, queue did not take chat=%s kind=%s (%d of %d queued): %s",
            channel,
            hash_id(context.id_key, failed.chat_id),
            failed.kind,
            queued,
            len(messages),
            type(exc).__name__,
        )
        return _error(503, "queue unavailable, retry later")
    return _ok()


def _queued(
    context: WebhookContext, channel: Channel, message: InboundMessage, fresh: bool
) -> None:
    """Note a message the queue took, or refused as a duplicate delivery."""
    if fresh:
        logger.debug("%s webhook: queued %s kind=%s", channel, message.dedupe_key, message.kind)
        return
    logger.debug("%s webhook: duplicate %s kind=%s", channel, message.dedupe_key, message.kind)
    if context.metrics is not None:
        context.metrics.duplicate_dropped(channel)


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is (or claims to be) longer than `limit` bytes.

    Counted as it arrives, after any Content-Encoding is undone, so a compressed body cannot
    grow past `limit` either.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _same(presented: str | None, expected: str) -> bool:
    """Constant-time equality of a presented credential with ours; absent never matches."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode())


def _ok() -> web.Response:
    return web.Response(body=_OK_BODY, content_type=_JSON)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _not_configured(channel: Channel) -> web.Response:
    return _error(404, f"the {channel} channel is not configured")
