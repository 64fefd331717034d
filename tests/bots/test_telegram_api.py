"""The Telegram API layer of the delivery (`bots.telegram_api`), through `TelegramDelivery`:
429 pauses and retries, refused calls, the plain-text fallback, best-effort calls that only log."""

from __future__ import annotations

import pytest

from bots.errors import DeliveryFailed
from bots.telegram_delivery import TelegramDelivery
from tests.bots.delivery_support import Script
from tests.bots.telegram_support import (  # noqa: F401
    BUTTONS,
    GROUP,
    PRIVATE,
    fixture_bot,
    fixture_delivery,
    fixture_stop,
    fixture_telegram,
    inbound,
    paced,
)
from tests.fakes.telegram import NOT_MODIFIED, FakeTelegram, Fault


async def test_a_draft_refused_with_429_pauses_the_drafts_for_retry_after(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessageDraft", Fault.too_many_requests(1))

    delivered = await delivery.stream(
        inbound(), Script(*paced(["tick "] * 15, 0.1)).events, turn_id="t1"
    )

    drafts = telegram.calls_to("sendMessageDraft")
    assert drafts[1].at - drafts[0].at >= 1.0
    assert delivered.text == "tick " * 15


async def test_a_draft_failure_does_not_stop_the_stream(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessageDraft", Fault(status=400, description="Bad Request: oops"), times=9)

    delivered = await delivery.stream(inbound(), Script("a", 0.2, "b").events, turn_id="t1")

    assert delivered.platform_message_id == "1"
    assert telegram.calls_to("sendMessage")[0].params["text"] == "ab"


async def test_the_final_message_is_retried_after_retry_after(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessage", Fault.too_many_requests(1))

    delivered = await delivery.stream(inbound(), Script("Hi").events, turn_id="t1")

    first, second = telegram.calls_to("sendMessage")
    assert second.at - first.at >= 1.0
    assert delivered.platform_message_id == "1"


async def test_a_final_message_that_keeps_hitting_flood_control_raises(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessage", Fault.too_many_requests(5))

    with pytest.raises(DeliveryFailed, match="retry after 5 s") as caught:
        await delivery.stream(inbound(), Script("Hi").events, turn_id="t1")

    assert caught.value.code == 429
    assert len(telegram.calls_to("sendMessage")) == 1


async def test_a_refused_final_message_raises_with_the_status(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("sendMessage", Fault(status=403, description="Forbidden: bot was blocked"))

    with pytest.raises(DeliveryFailed, match="bot was blocked") as caught:
        await delivery.stream(inbound(), Script("Hi").events, turn_id="t1")

    assert caught.value.code == 403


async def test_unparsable_formatting_is_resent_as_plain_text(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.reject_parse_modes.add("HTML")

    await delivery.stream(inbound(), Script("Use **bold** & `code`").events, turn_id="t1")

    formatted, plain = (c.params for c in telegram.calls_to("sendMessage"))
    assert formatted["parse_mode"] == "HTML"
    assert plain == {"chat_id": PRIVATE, "text": "Use bold & code", "reply_markup": BUTTONS}


async def test_an_unmodified_final_edit_counts_as_delivered(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    telegram.fail("editMessageText", Fault(status=400, description=NOT_MODIFIED), times=5)

    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), Script("Same", 0.3).events, turn_id="t1"
    )

    assert delivered.platform_message_id == "1"


async def test_a_failed_button_answer_is_only_logged(
    delivery: TelegramDelivery, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail(
        "answerCallbackQuery", Fault(status=400, description="Bad Request: query is too old")
    )

    await delivery.answer_button(inbound(callback_id="old"), "Thanks!")

    assert "answerCallbackQuery failed (best effort): TelegramBadRequest" in caplog.text
