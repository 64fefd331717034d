"""Telegram delivery through aiogram's real Bot against the loopback fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from aiogram import Bot

from bots.formatting import utf16_len
from bots.stop_signal import MemoryStopSwitch
from bots.telegram_delivery import TelegramDelivery, keyboard
from bots.turn_fence import fenced
from routing.execution_types import Delta, ExecEvent, Restart
from tests.bots.delivery_support import Script
from tests.bots.pipeline_kit import until
from tests.bots.telegram_support import (  # noqa: F401  (fixtures; TOKEN: see below)
    BUTTONS,
    DRAFT_S,
    EDIT_S,
    EPSILON,
    GROUP,
    PACING,
    PRIVATE,
    TOKEN,  # tests/log_scrape.py looks the bot token up in this module
    TYPING_S,
    Stop,
    fixture_bot,
    fixture_delivery,
    fixture_stop,
    fixture_telegram,
    gaps,
    inbound,
    paced,
)
from tests.fakes.telegram import FakeTelegram


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


async def test_a_turn_stopped_at_its_fence_shows_drafts_but_sends_no_final_message(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    passed: list[str] = []

    async def taken_over() -> None:  # what ChatTurns' fence does when another worker holds the chat
        passed.append("fence")
        raise asyncio.CancelledError

    script = Script(*paced(["The answer ", "streams ", "in drafts."], 0.04))
    streaming = asyncio.create_task(
        delivery.stream(inbound(), script.events, turn_id="t1"), context=fenced(taken_over)
    )
    with pytest.raises(asyncio.CancelledError):
        await streaming
    assert passed == ["fence"]
    assert telegram.calls_to("sendMessageDraft")
    assert telegram.calls_to("sendMessage") == []


async def test_typing_is_sent_at_once_and_repeated_until_the_first_text_shows(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    async with delivery.typing(inbound(thread_id="9")):
        await asyncio.sleep(0.2)
        delivered = await delivery.stream(
            inbound(thread_id="9"), Script("Hello", 0.3, " there").events, turn_id="t1"
        )
        await asyncio.sleep(3 * TYPING_S)

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
    async with delivery.typing(inbound()):
        await delivery.send_text(inbound(), "You've reached today's limit.")
        await asyncio.sleep(3 * TYPING_S)
    async with delivery.typing(inbound(GROUP, chat_type="group")):
        await delivery.aclose()
        await asyncio.sleep(3 * TYPING_S)

    assert [c.method for c in telegram.calls] == ["sendChatAction", "sendMessage", "sendChatAction"]


async def test_typing_ends_with_its_block_even_when_the_turn_fails(
    delivery: TelegramDelivery, telegram: FakeTelegram
) -> None:
    async def failing_turn() -> None:
        async with delivery.typing(inbound()):
            await asyncio.sleep(3 * TYPING_S)
            raise RuntimeError("turn failed")

    with pytest.raises(RuntimeError, match="turn failed"):
        await failing_turn()
    beats = len(telegram.calls_to("sendChatAction"))
    await asyncio.sleep(4 * TYPING_S)

    assert beats >= 2
    assert len(telegram.calls_to("sendChatAction")) == beats


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
    class StopAfterFirstDraft(Stop):
        async def stopped(self, chat_id: str, draft_id: str) -> bool:
            drafts = telegram.calls_to("sendMessageDraft")
            return any(str(call.params["draft_id"]) == draft_id for call in drafts)

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

    assert stop.calls >= 3  # open, at least one read, close: each failed
    assert (delivered.text, delivered.stopped) == ("ab", False)


async def test_only_a_press_on_the_streaming_draft_stops_it(
    bot: Bot, telegram: FakeTelegram
) -> None:
    switch = MemoryStopSwitch()
    delivery = TelegramDelivery(bot, stop=switch, pacing=PACING)
    chat = str(PRIVATE)

    async def press_when_drafted() -> tuple[bool, bool, bool]:
        await until(lambda: bool(telegram.calls_to("sendMessageDraft")))
        draft = str(telegram.calls_to("sendMessageDraft")[0].params["draft_id"])
        stale = await switch.press(chat, str(int(draft) + 1))  # an earlier answer's draft
        elsewhere = await switch.press(str(GROUP), draft)
        await asyncio.sleep(3 * DRAFT_S)
        return stale, elsewhere, await switch.press(chat, draft)

    script = Script(*paced([f"w{n} " for n in range(30)], 0.05))
    presses = asyncio.create_task(press_when_drafted())
    delivered = await delivery.stream(inbound(), script.events, turn_id="t1")

    assert await presses == (False, False, True)
    assert delivered.stopped
    assert 3 < script.taken < 30
    assert switch.ignored == 2
    draft = str(telegram.calls_to("sendMessageDraft")[0].params["draft_id"])
    assert await switch.press(chat, draft) is False  # the stream ended: its draft is closed


async def test_a_draft_is_open_for_stop_presses_exactly_while_it_streams(
    delivery: TelegramDelivery, telegram: FakeTelegram, stop: Stop
) -> None:
    await delivery.stream(inbound(), Script("a", 0.2, "b").events, turn_id="t1")
    with pytest.raises(RuntimeError, match="executor bug"):
        await delivery.stream(inbound(), _failing(), turn_id="t2")
    await delivery.stream(inbound(GROUP, chat_type="group"), Script("c").events, turn_id="t3")

    first = telegram.calls_to("sendMessageDraft")[0].params["draft_id"]
    assert [chat for chat, _ in stop.opened] == [str(PRIVATE)] * 2
    assert stop.opened[0][1] == str(first) != stop.opened[1][1]
    assert stop.closed == stop.opened


async def test_a_group_answer_has_no_stop_button(
    delivery: TelegramDelivery, telegram: FakeTelegram, stop: Stop
) -> None:
    stop.pressed = True

    delivered = await delivery.stream(
        inbound(GROUP, chat_type="group"), Script("a", 0.2, "b").events, turn_id="t1"
    )

    assert (delivered.text, delivered.stopped, stop.calls) == ("ab", False, 0)


async def _failing() -> AsyncGenerator[ExecEvent, None]:
    yield Delta(text="a")
    await asyncio.sleep(0.05)
    raise RuntimeError("executor bug")


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


def test_button_data_must_fit_64_bytes() -> None:
    assert keyboard("t" * 52).inline_keyboard[1][0].callback_data == f"fb:{'t' * 52}:stronger"
    with pytest.raises(ValueError, match="64 bytes"):
        keyboard("t" * 53)
