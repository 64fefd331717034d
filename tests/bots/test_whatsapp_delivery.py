"""WhatsApp delivery through our thin aiohttp client against the loopback fake Graph API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import HttpUrl, SecretStr

from bots.channel_settings import ChannelSettings
from bots.errors import DeliveryFailed
from bots.turn_fence import fenced
from bots.types import InboundMessage
from bots.whatsapp_delivery import WhatsAppDelivery, WhatsAppPacing
from routing.errors import ConfigError
from routing.execution_types import ExecEvent, Restart
from tests.bots.delivery_support import Script
from tests.fakes.whatsapp import (
    OUTSIDE_WINDOW,
    PAIR_RATE_LIMIT,
    FakeWhatsApp,
    GraphFault,
    Json,
    Sent,
)

ACCESS_TOKEN = "EAAFakeAccessToken"
PHONE_ID = "1122334455667"
USER = "4915112345678"
TYPING_S = 0.05
PACING = WhatsAppPacing(
    typing_interval_s=TYPING_S,
    call_timeout_s=5.0,
    retry_wait_s=0.1,
    max_retry_wait_s=2.0,
)
DAY = 24 * 3600.0
THROTTLED = GraphFault(code=130429, message="(#130429) Rate limit hit", status=429, retry_after=1)


def inbound(*, ts: float | None = None, language: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="whatsapp",
        dedupe_key="wa:msg:wamid.IN",
        chat_id=USER,
        user_id=USER,
        kind="text",
        text="hi",
        message_id="wamid.IN",
        ts=time.time() if ts is None else ts,
        language=language,
    )


def settings(base: str) -> ChannelSettings:
    return ChannelSettings(
        whatsapp_access_token=SecretStr(ACCESS_TOKEN),
        whatsapp_app_secret=SecretStr("app-secret"),
        whatsapp_verify_token=SecretStr("verify"),
        whatsapp_phone_number_id=PHONE_ID,
        whatsapp_api_base=HttpUrl(base),
    )


def body_text(sent: Sent) -> Json:
    """The text a message shows: a text body or an interactive body."""
    section = sent.body.get("text") or sent.body.get("interactive")
    assert isinstance(section, dict)
    if sent.kind == "text":
        return section["body"]
    body = section["body"]
    assert isinstance(body, dict)
    return body["text"]


def button_ids(sent: Sent) -> list[Json]:
    interactive = sent.body["interactive"]
    assert isinstance(interactive, dict)
    action = interactive["action"]
    assert isinstance(action, dict)
    buttons = action["buttons"]
    assert isinstance(buttons, list)
    return [
        b["reply"]["id"] for b in buttons if isinstance(b, dict) and isinstance(b["reply"], dict)
    ]


@asynccontextmanager
async def graph(handler: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A one-route Graph API stand-in on loopback for replies the fake does not script; yields
    its base URL."""
    app = web.Application()
    app.router.add_post("/v26.0/{phone}/messages", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/v26.0"))
    finally:
        await server.close()


@pytest.fixture
async def whatsapp() -> AsyncIterator[FakeWhatsApp]:
    async with FakeWhatsApp(access_token=ACCESS_TOKEN, phone_number_id=PHONE_ID) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def delivery(
    session: aiohttp.ClientSession, whatsapp: FakeWhatsApp
) -> AsyncIterator[WhatsAppDelivery]:
    wa = WhatsAppDelivery(session, settings(whatsapp.url), pacing=PACING)
    yield wa
    await wa.aclose()


async def test_a_short_answer_is_one_message_with_the_buttons(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    delivered = await delivery.stream(
        inbound(),
        Script("## Result\n", "It is **done**, see [docs](https://x.org).").events,
        turn_id="t1",
    )

    [sent] = whatsapp.sent
    assert sent.kind == "interactive"
    assert body_text(sent) == "*Result*\nIt is *done*, see docs (https://x.org)."
    assert button_ids(sent) == ["fb:t1:up", "fb:t1:down", "fb:t1:stronger"]
    assert (sent.body["to"], sent.body["recipient_type"]) == (USER, "individual")
    assert delivered.platform_message_id == sent.wamid
    assert delivered.text == "## Result\nIt is **done**, see [docs](https://x.org)."


async def test_a_turn_stopped_at_its_fence_sends_nothing(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    async def taken_over() -> None:  # what ChatTurns' fence does when another worker holds the chat
        raise asyncio.CancelledError

    answering = asyncio.create_task(
        delivery.stream(inbound(), Script("It is done.").events, turn_id="t1"),
        context=fenced(taken_over),
    )
    with pytest.raises(asyncio.CancelledError):
        await answering
    assert whatsapp.sent == []


async def test_an_answer_too_long_for_a_button_body_gets_the_buttons_after_it(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    answer = "A sentence that goes on. " * 60  # 1500 characters

    delivered = await delivery.stream(inbound(), Script(answer).events, turn_id="t1")

    text, buttons = whatsapp.sent
    assert (text.kind, body_text(text)) == ("text", answer.strip())
    assert (buttons.kind, body_text(buttons)) == ("interactive", "Was this answer helpful?")
    assert delivered.platform_message_id == text.wamid


async def test_a_long_answer_is_split_at_paragraphs_into_few_messages(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    paragraphs = [f"Part {n}. " + "Lorem ipsum dolor sit amet. " * 20 for n in range(15)]

    await delivery.stream(inbound(), Script("\n\n".join(paragraphs)).events, turn_id="t1")

    texts = [str(body_text(sent)) for sent in whatsapp.sent]
    assert [sent.kind for sent in whatsapp.sent] == ["text", "text", "interactive"]
    assert all(len(text) <= 4096 for text in texts)
    assert [text.split("\n\n")[0][:7] for text in texts] == ["Part 0.", "Part 7.", "Part 14"]
    assert " ".join(texts).split() == " ".join(paragraphs).split()


async def test_typing_marks_read_at_once_and_is_renewed_while_generating(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    async with delivery.typing(inbound()):
        await delivery.stream(inbound(), Script(0.2, "ok").events, turn_id="t1")
        await asyncio.sleep(3 * TYPING_S)

    reads = whatsapp.of_kind("read")
    assert len(reads) >= 3
    assert reads[0].body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN",
        "typing_indicator": {"type": "text"},
    }
    answer = whatsapp.of_kind("interactive")[0]
    assert all(read.at < answer.at for read in reads)


async def test_a_failing_typing_indicator_is_only_logged(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp, caplog: pytest.LogCaptureFixture
) -> None:
    whatsapp.fail(PAIR_RATE_LIMIT)

    async with delivery.typing(inbound()):
        await delivery.aclose()

    assert "typing indicator failed (code 131056)" in caplog.text


async def test_typing_ends_with_its_block_even_when_the_turn_fails(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    async def failing_turn() -> None:
        async with delivery.typing(inbound()):
            await asyncio.sleep(3 * TYPING_S)
            raise RuntimeError("turn failed")

    with pytest.raises(RuntimeError, match="turn failed"):
        await failing_turn()
    reads = len(whatsapp.of_kind("read"))
    await asyncio.sleep(4 * TYPING_S)

    assert reads >= 2
    assert len(whatsapp.of_kind("read")) == reads


async def test_a_notice_goes_first(delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp) -> None:
    await delivery.stream(
        inbound(), Script("Done.").events, turn_id="t1", notice="Trying a stronger model…"
    )

    assert [body_text(sent) for sent in whatsapp.sent] == ["Trying a stronger model…", "Done."]


async def test_a_restart_drops_the_collected_text(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    script = Script("Wrong ", Restart(reason="fallback"), "Right.")

    delivered = await delivery.stream(inbound(), script.events, turn_id="t1")

    assert [body_text(sent) for sent in whatsapp.sent] == ["Right."]
    assert delivered.text == "Right."


async def test_after_24_hours_nothing_is_sent(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp, caplog: pytest.LogCaptureFixture
) -> None:
    old = inbound(ts=time.time() - DAY - 60)
    script = Script("never generated")

    async with delivery.typing(old):
        delivered = await delivery.stream(old, script.events, turn_id="t1")
    sent = await delivery.send_text(old, "Limit reached")

    assert whatsapp.sent == []
    assert (delivered.platform_message_id, delivered.outcome, sent) == (None, None, None)
    assert (script.closed, script.taken) == (True, 0)
    assert "24 h window closed" in caplog.text


async def test_a_window_that_closes_while_generating_sends_nothing(
    session: aiohttp.ClientSession, whatsapp: FakeWhatsApp
) -> None:
    now = [1_000_000.0]
    delivery = WhatsAppDelivery(
        session, settings(whatsapp.url), pacing=PACING, clock=lambda: now[0]
    )

    async def slow() -> AsyncGenerator[ExecEvent, None]:
        async for event in Script("late answer").events:
            now[0] += 120.0
            yield event

    delivered = await delivery.stream(inbound(ts=now[0] - DAY + 60), slow(), turn_id="t1")

    assert whatsapp.sent == []
    assert (delivered.platform_message_id, delivered.text) == (None, "late answer")
    assert delivered.outcome is not None


async def test_a_failed_answer_gets_an_apology_without_buttons(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    delivered = await delivery.stream(
        inbound(language="pt-BR"), Script("x", ok=False).events, turn_id="t1"
    )

    [sent] = whatsapp.sent
    assert sent.kind == "text"
    assert str(body_text(sent)).startswith("Desculpe")
    assert delivered.outcome is not None
    assert delivered.platform_message_id == sent.wamid


async def test_a_graph_error_raises_delivery_failed_with_its_code(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.fail(OUTSIDE_WINDOW)

    with pytest.raises(DeliveryFailed, match="Re-engagement") as caught:
        await delivery.stream(inbound(), Script("hi").events, turn_id="t1")

    assert caught.value.code == 131047


async def test_a_rate_limit_is_waited_out_and_retried_once(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.fail(THROTTLED)

    delivered = await delivery.stream(inbound(), Script("hi").events, turn_id="t1")

    refused, accepted = whatsapp.sent
    assert (refused.status, accepted.status) == (429, 200)
    assert accepted.at - refused.at >= 1.0
    assert delivered.platform_message_id == accepted.wamid


async def test_a_rate_limit_that_persists_raises(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    quick = GraphFault(code=130429, message="(#130429) Rate limit hit")
    whatsapp.fail(quick, times=2)

    with pytest.raises(DeliveryFailed) as caught:
        await delivery.send_text(inbound(), "hi")

    assert caught.value.code == 130429
    assert len(whatsapp.sent) == 2


@pytest.mark.parametrize("retry_after", ["60", "soon"])
async def test_a_long_or_unreadable_retry_after(
    session: aiohttp.ClientSession, retry_after: str
) -> None:
    async def throttled(request: web.Request) -> web.Response:
        error = {"error": {"message": "Rate limit hit", "code": 130429}}
        return web.json_response(error, status=429, headers={"Retry-After": retry_after})

    async with graph(throttled) as base:
        delivery = WhatsAppDelivery(session, settings(base), pacing=PACING)
        started = time.monotonic()
        with pytest.raises(DeliveryFailed) as caught:
            await delivery.send_text(inbound(), "hi")

    assert caught.value.code == 130429
    waited = time.monotonic() - started
    assert waited < 0.5 if retry_after == "60" else waited >= PACING.retry_wait_s


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>", "HTTP 200 with no Graph reply"),
        (502, b"{}", "HTTP 502 without an error"),
        (200, b'{"success": true}', "returned no message id"),
    ],
)
async def test_unreadable_replies_raise(
    session: aiohttp.ClientSession, status: int, body: bytes, message: str
) -> None:
    async def odd(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async with graph(odd) as base:
        delivery = WhatsAppDelivery(session, settings(base), pacing=PACING)
        with pytest.raises(DeliveryFailed, match=message):
            await delivery.send_text(inbound(), "hi")


async def test_an_unreachable_api_raises_without_a_code(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = WhatsAppDelivery(session, settings(f"http://127.0.0.1:{port}/v26.0"), pacing=PACING)

    with pytest.raises(DeliveryFailed, match="ClientConnectorError") as caught:
        await delivery.send_text(inbound(), "hi")

    assert caught.value.code is None


async def test_plain_texts_and_button_presses(
    delivery: WhatsAppDelivery, whatsapp: FakeWhatsApp
) -> None:
    wamid = await delivery.send_text(inbound(), "You've reached *today's* limit.")
    blank = await delivery.send_text(inbound(), " ")
    await delivery.answer_button(inbound(), "Thanks!")

    [sent] = whatsapp.sent
    assert body_text(sent) == "You've reached *today's* limit."
    assert (wamid, blank) == (sent.wamid, None)


async def test_turn_ids_must_fit_button_ids(delivery: WhatsAppDelivery) -> None:
    with pytest.raises(ValueError, match="longer than 256"):
        await delivery.stream(inbound(), Script("x").events, turn_id="t" * 250)


async def test_the_channel_must_be_configured(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ConfigError, match="WHATSAPP_ACCESS_TOKEN"):
        WhatsAppDelivery(
            session,
            ChannelSettings(whatsapp_access_token=None, whatsapp_phone_number_id=None),
        )
