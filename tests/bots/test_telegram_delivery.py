"""Telegram delivery through aiogram's real Bot against the loopback fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bots.errors import DeliveryFailed, StoreUnavailable
from bots.formatting import utf16_len
from bots.telegram_delivery import TelegramDelivery, TelegramPacing, keyboard
from bots.types import ChatType, InboundMessage
from routing.execution_types import Delta, ExecEvent, Restart
from tests.bots.delivery_support import Script
from tests.fakes.telegram import NOT_MODIFIED, Call, FakeTelegram, Fault

TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdef"
PRIVATE, GROUP = 4242, -100777
DRAFT_S, EDIT_S, TYPING_S = 0.1, 0.15, 0.05
PACING = TelegramPacing(
    draft_interval_s=DRAFT_S,
    edit_interval_s=EDIT_S,
    typing_interval_s=TYPING_S,
    typing_for_s=5.0,
    call_timeout_s=5.0,
    max_retry_wait_s=2.0,
)
BUTTONS = {
    "inline_keyboard": [
        [
            {"text": "👍", "callback_data": "fb:t1:up"},
            {"text": "👎", "callback_data": "fb:t1:down"},
        ],
        [{"text": "Try a stronger model", "callback_data": "fb:t1:stronger"}],
    ]
}
EPSILON = 0.005
"""Timer slack: the fake stamps calls on arrival, after the client's own clock said go."""


class Stop:
    """A StopSignal double: stops once `when()` holds; can also fail like an unreachable Redis."""

    def __init__(self) -> None:
        self.pressed = False
        self.broken = False
        self.calls = 0

    async def stopped(self, chat_id: str) -> bool:
        self.calls += 1
        if self.broken:
            raise StoreUnavailable("redis down")
        return self.pressed


def inbound(
    chat: int = PRIVATE,
    *,
    chat_type: ChatType = "private",
    language: str | None = None,
    thread_id: str | None = None,
    callback_id: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        dedupe_key="tg:1",
        chat_id=str(chat),
        user_id="7",
        kind="text",
        text="hi",
        message_id="10",
        chat_type=chat_type,
        language=language,
        thread_id=thread_id,
        callback_id=callback_id,
    )


def paced(pieces: Sequence[str], gap_s: float) -> list[str | float]:
    steps: list[str | float] = []
    for piece in pieces:
        steps += [piece, gap_s]
    return steps


def gaps(calls: list[Call]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(calls)]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(telegram: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    async with Bot(TOKEN, session=session) as client:
        yield client


@pytest.fixture
def stop() -> Stop:
    return Stop()


@pytest.fixture
async def delivery(bot: Bot, stop: Stop) -> AsyncIterator[TelegramDelivery]:
    telegram_delivery = TelegramDelivery(bot, stop=stop, pacing=PACING)
    yield telegram_delivery
    await telegram_delivery.aclose()


async def test_a_private_answer_streams_into_paced_drafts_then_one_formatted_message(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    pieces = ["**Paris** ", "is the ", "capital ", "of France", " & has < 3 ", "airports. "] * 3
    script = Script(*paced(pieces, 0.04))

    delivered = await delivery.stream(inbound(), script.events, turn_id="t1")

    answer = "".join(pieces)
    drafts = telegram.calls_to("sendMessageDraft")
    assert 3 <= len(drafts) <= 18 * 0.04 / DRAFT_S + 1
    assert min(gaps(drafts)) >= DRAFT_S - EPSILON
    assert {d.params["draft_id"] for d in drafts} == {drafts[0].params["draft_id"]} != {0}
    assert all(d.params["can_stop"] is True and "parse_mode" not in d.params for d in drafts)
    assert all(str(d.params["text"]).startswith("Paris") for d in drafts)  # plain: no "**"
    assert [c.params for c in telegram.calls_to("sendMessage")] == [
        {
            "chat_id": PRIVATE,
            "text": " ".join(
                ["<b>Paris</b> is the capital of France &amp; has &lt; 3 airports."] * 3
            ),
            "parse_mode": "HTML",
            "reply_markup": BUTTONS,
        }
    ]
    assert (delivered.platform_message_id, delivered.text, delivered.stopped) == (
        "1",
        answer,
        False,
    )
    assert delivered.outcome is not None
    assert delivered.outcome.ok


async def test_typing_is_sent_at_once_and_repeated_until_the_first_text_shows(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    await delivery.typing(inbound(thread_id="9"))
    await asyncio.sleep(0.2)
    delivered = await delivery.stream(
        inbound(thread_id="9"), Script("Hello", 0.3, " there").events, turn_id="t1"
    )

    first_draft = telegram.calls_to("sendMessageDraft")[0]
    typing = telegram.calls_to("sendChatAction")
    assert len(typing) >= 3
    assert all(call.at < first_draft.at for call in typing)
    assert typing[0].params == {"chat_id": PRIVATE, "action": "typing", "message_thread_id": 9}
    assert first_draft.params["message_thread_id"] == 9
    assert telegram.calls_to("sendMessage")[0].params["message_thread_id"] == 9
    assert delivered.text == "Hello there"


async def test_typing_stops_after_a_plain_message_and_at_close(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    await delivery.typing(inbound())
    await delivery.send_text(inbound(), "You've reached today's limit.")
    await asyncio.sleep(3 * TYPING_S)
    await delivery.typing(inbound(GROUP, chat_type="group"))
    await delivery.aclose()
    await asyncio.sleep(3 * TYPING_S)

    assert [c.method for c in telegram.calls] == ["sendChatAction", "sendMessage", "sendChatAction"]


async def test_a_notice_fills_the_draft_until_the_answer_starts(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    await delivery.stream(
        inbound(), Script(0.3, "Done.").events, turn_id="t1", notice="Trying a stronger model…"
    )

    texts = [call.params["text"] for call in telegram.calls_to("sendMessageDraft")]
    assert texts[0] == "Trying a stronger model…"
    assert telegram.calls_to("sendMessage")[0].params["text"] == "Done."


async def test_a_restart_replaces_the_draft_text(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    script = Script(
        "Wrong start ", 0.2, Restart(reason="fallback"), 0.2, "Right", 0.2, " answer", 0.2
    )

    delivered = await delivery.stream(inbound(), script.events, turn_id="t1")

    drafts = telegram.calls_to("sendMessageDraft")
    texts = [call.params.get("text", "") for call in drafts]  # aiogram leaves out empty text
    assert texts[0] == "Wrong start"
    assert "" in texts  # the restart cleared the draft ("Thinking…")
    assert texts[-1] == "Right answer"
    assert len({call.params["draft_id"] for call in drafts}) == 1
    assert telegram.calls_to("sendMessage")[0].params["text"] == "Right answer"
    assert delivered.text == "Right answer"


async def test_stop_closes_the_events_and_keeps_what_was_shown(
    bot: Bot, telegram: FakeTelegram
) -> None:
    class StopAfterFirstDraft:
        async def stopped(self, chat_id: str) -> bool:
            return bool(telegram.calls_to("sendMessageDraft"))

    delivery = TelegramDelivery(bot, stop=StopAfterFirstDraft(), pacing=PACING)
    script = Script(*paced(["Once ", "upon ", "a ", "time ", "there ", "was"], 0.1))

    delivered = await delivery.stream(inbound(language="de"), script.events, turn_id="t1")

    shown = telegram.calls_to("sendMessageDraft")[0].params["text"]
    assert script.closed
    assert script.taken < 6
    assert (delivered.stopped, delivered.outcome, delivered.text.strip()) == (True, None, shown)
    final = telegram.calls_to("sendMessage")[0].params
    assert final["text"] == f"{shown}\n\n<i>⏹ Gestoppt</i>"
    assert final["reply_markup"] == BUTTONS


async def test_stop_before_any_text_sends_only_the_note(
    delivery: TelegramDelivery, telegram: FakeTelegram, stop: Stop
) -> None:
    stop.pressed = True
    script = Script(0.5, "never shown")

    delivered = await delivery.stream(inbound(), script.events, turn_id="t1")

    assert (script.closed, script.taken) == (True, 0)
    assert telegram.calls_to("sendMessage")[0].params["text"] == "<i>⏹ Stopped</i>"
    assert (delivered.text, delivered.stopped) == ("", True)


async def test_an_unreachable_stop_signal_does_not_stop_the_answer(
    delivery: TelegramDelivery, telegram: FakeTelegram, stop: Stop
) -> None:
    stop.broken = True

    delivered = await delivery.stream(inbound(), Script("a", 0.2, "b").events, turn_id="t1")

    assert stop.calls >= 1
    assert (delivered.text, delivered.stopped) == ("ab", False)


async def test_a_group_answer_edits_a_placeholder_at_most_every_interval(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    pieces = [f"Step {n} of the plan. " for n in range(12)]
    script = Script(*paced(pieces, 0.07))

    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), script.events, turn_id="t1"
    )

    calls = [c for c in telegram.calls if c.method in ("sendMessage", "editMessageText")]
    assert (calls[0].method, calls[0].params["text"]) == ("sendMessage", "…")
    assert len(calls) >= 4
    assert all(c.method == "editMessageText" for c in calls[1:])
    assert min(gaps(calls)) >= EDIT_S - EPSILON
    assert telegram.calls_to("sendMessageDraft") == []
    final = calls[-1].params
    assert (final["parse_mode"], final["reply_markup"]) == ("HTML", BUTTONS)
    assert telegram.messages[(GROUP, 1)]["text"] == "".join(pieces).strip()
    assert delivered.platform_message_id == "1"


async def test_a_long_group_answer_freezes_a_message_and_continues_in_a_new_one(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    paragraphs = [f"Paragraph {n}: " + "привет мир 🌍 " * 14 for n in range(30)]  # 6360 units
    script = Script(*paced([p + "\n\n" for p in paragraphs], 0.03))

    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), script.events, turn_id="t1"
    )

    chat = {key[1]: m for key, m in telegram.messages.items() if key[0] == GROUP}
    assert len(chat) == 2
    texts = [str(chat[n]["text"]) for n in sorted(chat)]
    assert all(utf16_len(text) <= 4096 for text in texts)
    assert (texts[0][-1], texts[1][:9]) == ("🌍", "Paragraph")  # cut between paragraphs
    assert " ".join(texts).split() == " ".join(paragraphs).split()
    assert "reply_markup" not in chat[1]
    assert chat[2]["reply_markup"] == BUTTONS
    calls = [c for c in telegram.calls if c.method != "sendChatAction"]
    assert min(gaps(calls)) >= EDIT_S - EPSILON
    assert delivered.platform_message_id == "2"


async def test_a_restart_in_a_group_deletes_messages_it_no_longer_needs(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    long_start = "word " * 900  # two messages' worth
    script = Script(long_start, 0.2, long_start, 0.4, Restart(reason="fallback"), "Short.", 0.4)

    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), script.events, turn_id="t1"
    )

    assert [key for key in telegram.messages if key[0] == GROUP] == [(GROUP, 1)]
    assert telegram.messages[(GROUP, 1)]["text"] == "Short."
    assert len(telegram.calls_to("deleteMessage")) == 1
    assert delivered.platform_message_id == "1"


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


async def test_a_failed_answer_gets_an_apology_in_the_users_language_without_buttons(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    delivered = await delivery.stream(
        inbound(language="es-ES"), Script("partial", ok=False).events, turn_id="t1"
    )

    final = telegram.calls_to("sendMessage")[0].params
    assert str(final["text"]).startswith("Lo siento")
    assert "reply_markup" not in final
    assert delivered.outcome is not None
    assert not delivered.outcome.ok
    assert delivered.text == final["text"]


async def test_events_that_end_without_an_outcome_get_an_apology(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), Script("cut", with_outcome=False).events, turn_id="t1"
    )

    assert (delivered.outcome, delivered.stopped) == (None, False)
    assert str(telegram.messages[(GROUP, 1)]["text"]).startswith("Sorry")


async def test_an_executor_error_propagates_and_the_events_are_closed(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    closed = False

    async def failing() -> AsyncGenerator[ExecEvent, None]:
        nonlocal closed
        try:
            yield Delta(text="a")
            await asyncio.sleep(0.05)
            raise RuntimeError("executor bug")
        finally:
            closed = True

    with pytest.raises(RuntimeError, match="executor bug"):
        await delivery.stream(inbound(), failing(), turn_id="t1")

    assert closed
    assert telegram.calls_to("sendMessage") == []


async def test_plain_texts_and_button_answers(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    sent = await delivery.send_text(inbound(thread_id="3"), "Limit <reached> & more")
    blank = await delivery.send_text(inbound(), "  ")
    await delivery.answer_button(inbound(callback_id="cbq-9"), "Thanks!")
    await delivery.answer_button(inbound(), "no query to answer")

    assert (sent, blank) == ("1", None)
    assert [(c.method, c.params) for c in telegram.calls] == [
        (
            "sendMessage",
            {
                "chat_id": PRIVATE,
                "message_thread_id": 3,
                "text": "Limit <reached> & more",
            },
        ),
        ("answerCallbackQuery", {"callback_query_id": "cbq-9", "text": "Thanks!"}),
    ]


async def test_a_failed_button_answer_is_only_logged(
    delivery: TelegramDelivery, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail(
        "answerCallbackQuery", Fault(status=400, description="Bad Request: query is too old")
    )

    await delivery.answer_button(inbound(callback_id="old"), "Thanks!")

    assert "answerCallbackQuery failed (best effort): TelegramBadRequest" in caplog.text


def test_button_data_must_fit_64_bytes() -> None:
    assert keyboard("t" * 52).inline_keyboard[1][0].callback_data == f"fb:{'t' * 52}:stronger"
    with pytest.raises(ValueError, match="64 bytes"):
        keyboard("t" * 53)
