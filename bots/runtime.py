"""Builds the message pipeline for a role from settings: stores, deliveries, feedback, worker.

Without `REDIS_URL` every store lives in this process's memory (the embedded default: one
process, nothing durable across restarts); with it, the queue, chat state, history, limits,
stop switches and ledger are shared in Redis by any number of web and worker processes. The
feedback log is on `DATABASE_URL` (a SQLite file by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from redis.asyncio import Redis

from bots.assembly import LLMStack
from bots.channel_settings import ChannelSettings
from bots.chat_ledger import ChatLedger, MemoryLedger, RedisLedger
from bots.chat_state import ChatGate, ChatTurns, Outbox
from bots.chat_state_memory import MemoryChatGate, MemoryOutbox
from bots.chat_state_redis import RedisChatGate, RedisOutbox
from bots.constants import (
    HISTORY_PREFIX,
    LEDGER_PREFIX,
    PIPELINE_PREFIX,
    RATE_PREFIX,
    SPEND_PREFIX,
    STOP_PREFIX,
)
from bots.delivery import Delivery
from bots.errors import QueueUnavailable, StoreUnavailable
from bots.history import HistoryStore, MemoryHistory, RedisHistory
from bots.limits import (
    MemoryRateLimiter,
    MemorySpendBudget,
    RateLimiter,
    RedisRateLimiter,
    RedisSpendBudget,
    SpendBudget,
)
from bots.metrics import Metrics
from bots.pipeline import Pipeline
from bots.pipeline_types import FeedbackSink, PipelineParts
from bots.queue import Entry, Queue
from bots.queue_memory import MemoryQueue
from bots.queue_redis import RedisQueue
from bots.stop_signal import MemoryStopSwitch, RedisStopSwitch, StopSwitch
from bots.telegram_delivery import TelegramDelivery
from bots.types import Channel, InboundMessage
from bots.webhooks import Enqueue
from bots.whatsapp_delivery import WhatsAppDelivery
from bots.worker import DeadLetterAlarm, Worker, WorkerOptions
from bots.worker_settings import WorkerSettings
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore
from feedback.types import EventKind, EventRecord
from feedback.writer import FeedbackLog
from routing.execution_settings import ExecutionSettings
from routing.router import Router

logger = logging.getLogger(__name__)

Role = Literal["web", "worker", "all"]
ROLES: tuple[Role, ...] = ("web", "worker", "all")
REDIS_CONNECT_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Stores:
    """The pipeline's shared state: all in memory, or all in one Redis."""

    queue: Queue
    gate: ChatGate
    outbox: Outbox
    history: HistoryStore
    limiter: RateLimiter
    budget: SpendBudget
    ledger: ChatLedger
    stop: StopSwitch
    redis: Redis | None
    """The client the Redis stores share (None in memory); closed by whoever opened it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Messaging:
    """What a process of some role needs to run the message pipeline."""

    role: Role
    settings: WorkerSettings
    channels: ChannelSettings
    feedback: FeedbackSettings
    stores: Stores
    router: Router
    execution: ExecutionSettings
    metrics: Metrics | None = None

    @property
    def id_key(self) -> bytes:
        """Key of the HMAC behind turn ids and log-safe chat ids (TIERBOT_ID_HASH_KEY)."""
        return self.feedback.id_hash_key.get_secret_value().encode()

    @property
    def serves_webhooks(self) -> bool:
        """The web and all roles take the platforms' webhooks."""
        return self.role in ("web", "all")

    @property
    def runs_worker(self) -> bool:
        """The worker and all roles consume the queue."""
        return self.role in ("worker", "all")


def connect_redis(settings: WorkerSettings) -> Redis | None:
    """A client for REDIS_URL (connections open lazily), or None without it.

    No socket timeout: every call is bounded by `asyncio.timeout`, and with one set redis-py
    on Python 3.11 can swallow a task's cancellation.
    """
    if settings.redis_url is None:
        return None
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=None,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
    )


def build_stores(settings: WorkerSettings, redis: Redis | None) -> Stores:
    """The stores on `redis` under TIERBOT_REDIS_KEY_PREFIX, or in memory without it."""
    history = settings.history()
    ledger_ttl = history.ttl_s
    if redis is None:
        return Stores(
            queue=MemoryQueue(settings.queue()),
            gate=MemoryChatGate(settings.chat()),
            outbox=MemoryOutbox(),
            history=MemoryHistory(history),
            limiter=MemoryRateLimiter(settings.limits()),
            budget=MemorySpendBudget(settings.limits()),
            ledger=MemoryLedger(ttl_s=ledger_ttl),
            stop=MemoryStopSwitch(),
            redis=None,
        )
    ns = settings.redis_key_prefix
    return Stores(
        queue=RedisQueue(redis, settings.queue(), prefix=ns + PIPELINE_PREFIX),
        gate=RedisChatGate(redis, settings.chat(), prefix=ns + PIPELINE_PREFIX),
        outbox=RedisOutbox(redis, prefix=ns + PIPELINE_PREFIX),
        history=RedisHistory(redis, history, prefix=ns + HISTORY_PREFIX),
        limiter=RedisRateLimiter(redis, settings.limits(), prefix=ns + RATE_PREFIX),
        budget=RedisSpendBudget(redis, settings.limits(), prefix=ns + SPEND_PREFIX),
        ledger=RedisLedger(redis, prefix=ns + LEDGER_PREFIX, ttl_s=ledger_ttl),
        stop=RedisStopSwitch(redis, prefix=ns + STOP_PREFIX),
        redis=redis,
    )


def webhook_enqueue(stores: Stores) -> Enqueue:
    """The webhooks' `Enqueue`: a stop press raises its draft's stop switch at once (a queued
    stop would wait behind the chat's lock), and every update is queued for the record."""

    async def enqueue(message: InboundMessage, ttl_s: float, /) -> bool:
        if message.kind == "stop" and message.payload is not None:
            try:
                await stores.stop.press(message.chat_id, message.payload)
            except StoreUnavailable as exc:
                raise QueueUnavailable(f"stop switch: {exc}") from exc
        return await stores.queue.enqueue(message, ttl_s)

    return enqueue


@asynccontextmanager
async def open_feedback(settings: FeedbackSettings) -> AsyncIterator[FeedbackLog]:
    """The feedback log on DATABASE_URL, writing in the background until the block ends."""
    store = await FeedbackStore.open(settings)
    log = FeedbackLog(store, settings)
    try:
        log.start()
        yield log
    finally:
        await log.aclose()
        await store.aclose()


@asynccontextmanager
async def open_deliveries(
    channels: ChannelSettings, stop: StopSwitch
) -> AsyncIterator[dict[Channel, Delivery]]:
    """One delivery per configured channel, on one HTTP client each; closed at the end."""
    async with AsyncExitStack() as stack:
        deliveries: dict[Channel, Delivery] = {}
        token = channels.telegram_bot_token
        if channels.telegram_enabled and token is not None:
            api = TelegramAPIServer.from_base(channels.telegram_api_url)
            bot = Bot(token.get_secret_value(), session=AiohttpSession(api=api))
            stack.push_async_callback(bot.session.close)
            telegram = TelegramDelivery(bot, stop=stop)
            stack.push_async_callback(telegram.aclose)
            deliveries["telegram"] = telegram
        if channels.whatsapp_enabled:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            whatsapp = WhatsAppDelivery(session, channels)
            stack.push_async_callback(whatsapp.aclose)
            deliveries["whatsapp"] = whatsapp
        yield deliveries


def consumer_name() -> str:
    """This process's name in the consumer group: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@asynccontextmanager
async def run_worker(messaging: Messaging, llm: LLMStack) -> AsyncIterator[Worker]:
    """Run a worker (its feedback log, deliveries and pipeline) until the block ends; then
    stop it gracefully and close what it used."""
    settings, stores = messaging.settings, messaging.stores
    async with (
        open_feedback(messaging.feedback) as log,
        open_deliveries(messaging.channels, stores.stop) as deliveries,
    ):
        pipeline = Pipeline(
            PipelineParts(
                router=messaging.router,
                execution=messaging.execution,
                llm=llm,
                deliveries=deliveries,
                history=stores.history,
                limiter=stores.limiter,
                budget=stores.budget,
                ledger=stores.ledger,
                feedback=log,
                id_key=messaging.id_key,
                metrics=messaging.metrics,
            )
        )
        queue = DeadLetterAlarm(stores.queue, _dead_letter_event(log), metrics=messaging.metrics)
        turns = ChatTurns(
            queue=queue,
            gate=stores.gate,
            outbox=stores.outbox,
            handler=pipeline,
            settings=settings.chat(),
        )
        options = WorkerOptions(
            consumer=consumer_name(),
            concurrency=settings.worker_concurrency,
            claim_interval_s=settings.queue_claim_interval_seconds,
            shutdown_grace_s=settings.worker_shutdown_grace_seconds,
            id_key=messaging.id_key,
        )
        worker = Worker(queue=queue, handler=turns, options=options)
        task = asyncio.create_task(worker.run(), name="worker")
        try:
            yield worker
        finally:
            worker.stop()
            await task


def _dead_letter_event(log: FeedbackSink) -> Callable[[Entry, str], None]:
    def record(entry: Entry, reason: str) -> None:
        message = entry.message
        log.record_event(
            EventRecord(
                kind=EventKind.DEAD_LETTER,
                at=datetime.now(UTC),
                user_id=message.user_id,
                chat_id=message.chat_id,
                cause=reason,
            )
        )

    return record
