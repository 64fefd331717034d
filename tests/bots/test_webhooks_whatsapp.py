"""The WhatsApp webhook on loopback: the handshake, signatures, batches, statuses, BSUIDs."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pytest_aiohttp import AiohttpClient

from bots.channel_settings import ChannelSettings
from bots.metrics import Metrics
from tests.bots.json_mutation import flip
from tests.bots.webhook_support import (
    BSUID,
    WA_ID,
    Client,
    RecordingQueue,
    channels,
    duplicates,
    handshake,
    ignored,
    serve,
    sign,
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


async def test_the_verification_handshake_echoes_the_raw_challenge(client: Client) -> None:
    async with client.get("/whatsapp/webhook", params=handshake()) as response:
        assert (response.status, await response.text()) == (200, "1158201444")


@pytest.mark.parametrize(
    "params",
    [
        handshake(token="wrong"),
        handshake(token=None),
        handshake(mode=None),
        handshake(mode="unsubscribe"),
        handshake(challenge=None),
        {},
    ],
    ids=["wrong-token", "no-token", "no-mode", "other-mode", "no-challenge", "nothing"],
)
async def test_a_bad_handshake_is_403(client: Client, params: dict[str, str]) -> None:
    async with client.get("/whatsapp/webhook", params=params) as response:
        assert response.status == 403


async def test_a_signed_whatsapp_batch_is_queued_for_8_days(
    client: Client, queue: RecordingQueue
) -> None:
    assert await wa_post(client, wa_body(wa_value([wa_msg()]))) == 200
    assert [(m.dedupe_key, m.user_id, ttl) for m, ttl in queue.calls] == [
        ("wa:msg:wamid.A", WA_ID, 8 * 86400)
    ]


async def test_a_missing_signature_is_401_and_a_wrong_one_403(
    client: Client, queue: RecordingQueue
) -> None:
    body = wa_body(wa_value([wa_msg()]))

    assert await wa_post(client, body, signature=None) == 401
    assert await wa_post(client, body, signature=sign(body + b" ")) == 403
    assert await wa_post(client, body, signature=sign(body).upper()) == 403
    assert await wa_post(client, body + b" ", signature=sign(body)) == 403
    assert queue.calls == []


async def test_the_signature_is_checked_before_the_json(client: Client) -> None:
    assert await wa_post(client, b"{not json", signature="sha256=00") == 403
    assert await wa_post(client, b"{not json") == 400


async def test_a_whatsapp_body_over_4_mib_is_413(client: Client) -> None:
    body = b" " * (4 * 1024 * 1024 + 1)

    assert await wa_post(client, body) == 413
    assert await wa_post(client, body[:-1]) == 400


async def test_two_entries_of_two_changes_of_two_messages_queue_eight(
    client: Client, queue: RecordingQueue
) -> None:
    value = wa_value([wa_msg("wamid.1"), wa_msg("wamid.2")])

    assert await wa_post(client, wa_body(value, value, entries=2)) == 200
    assert len(queue.messages) == 8


async def test_statuses_are_queued_with_their_own_keys(
    client: Client, queue: RecordingQueue
) -> None:
    statuses: list[dict[str, object]] = [
        {"id": "wamid.O", "status": "delivered", "timestamp": "1", "recipient_id": WA_ID},
        {"id": "wamid.O", "status": "read", "timestamp": "2", "recipient_user_id": BSUID},
    ]

    assert await wa_post(client, wa_body(wa_value(statuses=statuses))) == 200
    assert [(m.kind, m.dedupe_key, m.chat_id) for m in queue.messages] == [
        ("status", "wa:st:wamid.O:delivered", WA_ID),
        ("status", "wa:st:wamid.O:read", BSUID),
    ]


async def test_a_bsuid_keys_the_whatsapp_user(client: Client, queue: RecordingQueue) -> None:
    assert await wa_post(client, wa_body(wa_value([wa_msg(from_user_id=BSUID)]))) == 200
    assert [(m.chat_id, m.user_id) for m in queue.messages] == [(BSUID, BSUID)]


async def test_unsupported_whatsapp_messages_are_200_and_counted(
    client: Client, queue: RecordingQueue
) -> None:
    image = wa_msg(type="image", image={"id": "m"})

    assert await wa_post(client, wa_body(wa_value([image, wa_msg()]))) == 200
    assert [m.dedupe_key for m in queue.messages] == ["wa:msg:wamid.A"]
    assert ignored(client).whatsapp == Counter({"message:image": 1})


async def test_duplicate_whatsapp_deliveries_are_counted_in_the_metrics(
    aiohttp_client: AiohttpClient, queue: RecordingQueue
) -> None:
    metrics = Metrics()
    client = await serve(aiohttp_client, queue, channels(), metrics)
    batch = wa_body(wa_value([wa_msg("wamid.1"), wa_msg("wamid.2")]))

    assert [await wa_post(client, batch) for _ in range(2)] == [200, 200]
    assert await wa_post(client, wa_body(wa_value([wa_msg("wamid.2"), wa_msg("wamid.3")]))) == 200
    assert (duplicates(metrics, "whatsapp"), duplicates(metrics, "telegram")) == (3.0, None)


async def test_a_batch_the_queue_takes_only_partly_is_503(
    client: Client, queue: RecordingQueue
) -> None:
    queue.fail_after = 1

    assert await wa_post(client, wa_body(wa_value([wa_msg("wamid.1"), wa_msg("wamid.2")]))) == 503
    assert [m.dedupe_key for m in queue.messages] == ["wa:msg:wamid.1"]


async def test_a_hanging_queue_is_503_for_whatsapp_too(
    client: Client, queue: RecordingQueue
) -> None:
    queue.hang = True
    started = time.monotonic()

    assert await wa_post(client, wa_body(wa_value([wa_msg()]))) == 503
    assert time.monotonic() - started < 1.1


# Property (reliability T11) end to end: a flipped bit of body or signature is refused over
# HTTP. The 2,000-example properties on `signature_valid` are in test_whatsapp_ingest.py.


SIGNED_BODY = wa_body(wa_value([wa_msg(text={"body": "grüße 👋"})]))


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(target=st.sampled_from(["body", "signature"]), bit=st.integers(min_value=0))
async def test_a_flipped_bit_in_body_or_signature_is_refused_over_http(
    client: Client, queue: RecordingQueue, target: str, bit: int
) -> None:
    body, signature = SIGNED_BODY, sign(SIGNED_BODY)
    if target == "body":
        body = flip(body, bit)
    else:
        signature = flip(signature.encode(), bit).decode("latin-1")
        assume(signature.isprintable() and signature.strip() == signature)

    assert await wa_post(client, body, signature=signature) in (401, 403)
    assert await wa_post(client, SIGNED_BODY) == 200
    assert {m.dedupe_key for m in queue.messages} == {"wa:msg:wamid.A"}
