"""The Telegram webhook on loopback, and what both webhooks share: auth, bounds, channel off."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from bots.channel_settings import ChannelSettings
from bots.metrics import Metrics
from bots.queue import QueueSettings
from bots.queue_memory import MemoryQueue
from bots.queue_redis import RedisQueue
from bots.webhooks import Enqueue, add_webhook_routes
from tests.bots.redis_fixtures import fixture_prefix, fixture_redis_client  # noqa: F401
from tests.bots.webhook_support import (
    ACCESS_TOKEN,
    APP_SECRET,
    BOT_TOKEN,
    BSUID,
    CLOCK,
    TG_SECRET,
    USER_TEXT,
    VERIFY_TOKEN,
    WA_ID,
    Client,
    RecordingQueue,
    channels,
    duplicates,
    handshake,
    ignored,
    serve,
    tg_post,
    tg_update,
    wa_body,
    wa_msg,
    wa_post,
    wa_value,
)


@pytest.fixture(autouse=True)
def _no_channel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ChannelSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, queue: RecordingQueue) -> Client:
    return await serve(aiohttp_client, queue, channels())


# Telegram


async def test_a_telegram_update_is_queued_for_48_hours_and_answered_200(
    client: Client, queue: RecordingQueue
) -> None:
    async with client.post(
        "/telegram/webhook",
        data=tg_update(),
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    ) as response:
        assert (response.status, await response.json()) == (200, {})

    assert [(m.dedupe_key, m.kind, m.text, ttl) for m, ttl in queue.calls] == [
        ("tg:100", "text", USER_TEXT, 48 * 3600)
    ]


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", TG_SECRET + "x", TG_SECRET[:-1], TG_SECRET.upper(), "sécret"]
)
async def test_a_wrong_or_missing_secret_is_401_and_nothing_is_queued(
    client: Client, queue: RecordingQueue, secret: str | None
) -> None:
    assert await tg_post(client, tg_update(), secret) == 401
    assert queue.calls == []


async def test_credentials_are_compared_in_constant_time(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = wa_body(wa_value([wa_msg()]))

    assert await tg_post(client, tg_update(), "guess") == 401
    assert await wa_post(client, body, signature="sha256=" + "0" * 64) == 403
    async with client.get("/whatsapp/webhook", params=handshake(token="guess")) as response:
        assert response.status == 403

    expected_signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert compared == [
        (b"guess", TG_SECRET.encode()),
        (expected_signature.encode(), b"sha256=" + b"0" * 64),
        (b"guess", VERIFY_TOKEN.encode()),
    ]


async def test_a_telegram_body_over_1_mib_is_413(client: Client, queue: RecordingQueue) -> None:
    assert await tg_post(client, b" " * (1024 * 1024 + 1)) == 413
    assert await tg_post(client, b" " * (1024 * 1024)) == 400
    assert queue.calls == []


async def test_a_chunked_body_is_cut_off_at_the_limit(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (256 * 1024)

    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    async with client.post("/telegram/webhook", data=chunks(), headers=headers) as response:
        assert response.status == 413


async def test_a_compressed_body_is_bounded_once_inflated(
    client: Client, queue: RecordingQueue
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Encoding": "gzip"}
    bomb = gzip.compress(b" " * (1024 * 1024 + 1))  # about 1 KiB on the wire

    async with client.post("/telegram/webhook", data=bomb, headers=headers) as response:
        assert response.status == 413
    async with client.post(
        "/telegram/webhook", data=gzip.compress(tg_update()), headers=headers
    ) as response:
        assert response.status == 200
    assert [m.dedupe_key for m in queue.messages] == ["tg:100"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"[1, 2]",
        b'{"update_id": true, "message": {}}',
        b'{"update_id": 1, "poll": NaN}',
        b"[" * 200_000 + b"]" * 200_000,
        b'{"update_id": 1, "message": {"message_id": 1, "date": 1, "chat": {"id": "x"}}}',
    ],
    ids=["empty", "html", "list", "bool-id", "nan", "deep", "string-chat-id"],
)
async def test_garbage_is_400_never_500(client: Client, queue: RecordingQueue, body: bytes) -> None:
    async with client.post(
        "/telegram/webhook", data=body, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    ) as response:
        assert (response.status, await response.json()) == (400, {"error": "bad update"})
    assert queue.calls == []


async def test_ignored_update_types_are_200_and_counted(
    client: Client, queue: RecordingQueue
) -> None:
    updates: list[dict[str, object]] = [{"poll": {"id": "p"}}, {"poll": {}}, {"chat_member": {}}]
    for n, update in enumerate(updates):
        assert await tg_post(client, json.dumps({"update_id": n, **update}).encode()) == 200

    assert queue.calls == []
    assert ignored(client).telegram == Counter({"poll": 2, "chat_member": 1})


async def test_a_duplicate_update_is_offered_twice_and_answered_200_twice(
    client: Client, queue: RecordingQueue
) -> None:
    assert [await tg_post(client, tg_update(7)) for _ in range(2)] == [200, 200]
    assert [m.dedupe_key for m in queue.messages] == ["tg:7", "tg:7"]


async def test_a_duplicate_delivery_is_counted_in_the_metrics(
    aiohttp_client: AiohttpClient, queue: RecordingQueue
) -> None:
    metrics = Metrics()
    client = await serve(aiohttp_client, queue, channels(), metrics)

    assert [await tg_post(client, tg_update(n)) for n in (7, 7, 8, 7)] == [200] * 4
    assert (duplicates(metrics, "telegram"), duplicates(metrics, "whatsapp")) == (2.0, None)


async def test_concurrent_deliveries_over_redis_are_queued_once_each(
    aiohttp_client: AiohttpClient, redis_client: Redis, prefix: str
) -> None:
    queue = RedisQueue(redis_client, QueueSettings(block_ms=50), prefix=prefix)
    metrics = Metrics()
    client = await serve(aiohttp_client, queue.enqueue, channels(), metrics)
    update_ids = [n % 30 for n in range(40)]  # 40 at once, as Telegram's max_connections

    statuses = await asyncio.gather(*(tg_post(client, tg_update(n)) for n in update_ids))

    assert statuses == [200] * 40
    entries = await queue.read("w1", count=100)
    assert sorted(e.message.dedupe_key for e in entries) == sorted(f"tg:{n}" for n in range(30))
    assert [e.seq for e in entries] == list(range(1, 31))
    assert duplicates(metrics, "telegram") == 10.0


async def test_an_unavailable_queue_is_503_so_telegram_retries(
    client: Client, queue: RecordingQueue
) -> None:
    queue.fail_after = 0

    async with client.post(
        "/telegram/webhook",
        data=tg_update(),
        headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
    ) as response:
        assert (response.status, await response.json()) == (
            503,
            {"error": "queue unavailable, retry later"},
        )


async def test_a_hanging_queue_is_503_within_1_1_seconds(
    client: Client, queue: RecordingQueue
) -> None:
    queue.hang = True
    started = time.monotonic()

    status = await tg_post(client, tg_update())

    assert (status, time.monotonic() - started < 1.1) == (503, True)


async def test_button_presses_are_stamped_with_the_clock(
    client: Client, queue: RecordingQueue
) -> None:
    chat = {"id": 5, "type": "private"}
    query = {
        "id": "q",
        "from": {"id": 5},
        "data": "fb:t:up",
        "message": {"message_id": 9, "date": 1, "chat": chat},
    }

    assert (
        await tg_post(client, json.dumps({"update_id": 3, "callback_query": query}).encode()) == 200
    )
    assert [(m.kind, m.ts) for m in queue.messages] == [("feedback", CLOCK)]


# Channels without credentials


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/telegram/webhook", "the telegram channel is not configured"),
        ("GET", "/whatsapp/webhook", "the whatsapp channel is not configured"),
        ("POST", "/whatsapp/webhook", "the whatsapp channel is not configured"),
    ],
)
async def test_a_channel_without_credentials_is_404(
    aiohttp_client: AiohttpClient, queue: RecordingQueue, method: str, path: str, message: str
) -> None:
    client = await serve(aiohttp_client, queue, channels(telegram=False, whatsapp=False))

    async with client.request(method, path, data=b"{}") as response:
        assert (response.status, await response.json()) == (404, {"error": message})


async def test_one_channel_can_be_on_while_the_other_is_off(
    aiohttp_client: AiohttpClient, queue: RecordingQueue
) -> None:
    client = await serve(aiohttp_client, queue, channels(telegram=False))

    assert await tg_post(client, tg_update()) == 404
    assert await wa_post(client, wa_body(wa_value([wa_msg()]))) == 200


# Logs


async def test_logs_above_debug_hold_no_secrets_ids_or_text(
    client: Client, queue: RecordingQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bots")
    await tg_post(client, tg_update(), secret="wrong")
    await tg_post(client, b'{"update_id": 1, "message": {"text": "' + USER_TEXT.encode() + b'"}}')
    await wa_post(client, wa_body(wa_value([wa_msg(from_user_id=BSUID)])), signature="sha256=0")
    await wa_post(client, b'{"object": 1, "text": "' + USER_TEXT.encode() + b'"}')
    queue.fail_after = 0
    await tg_post(client, tg_update())
    await wa_post(client, wa_body(wa_value([wa_msg(from_user_id=BSUID)])))

    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
    secrets = [BOT_TOKEN, TG_SECRET, ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN]
    assert [s for s in [*secrets, WA_ID, BSUID, "4242", USER_TEXT] if s in logged] == []
    assert "503" in logged


async def test_the_memory_queue_plugs_in_as_the_enqueue(aiohttp_client: AiohttpClient) -> None:
    enqueue: Enqueue = MemoryQueue().enqueue
    app = web.Application()
    add_webhook_routes(app, channels=channels(), enqueue=enqueue, id_key=b"log-key")
    client = await aiohttp_client(app)

    assert [await tg_post(client, tg_update(5)) for _ in range(2)] == [200, 200]
