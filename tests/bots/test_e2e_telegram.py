"""Telegram end to end: webhook → 200 → queue → worker → routing → streamed answer → the final
message with buttons in the fake Bot API; on the memory queue and on Redis (web + worker)."""

from __future__ import annotations

import asyncio

from bots.delivery import parse_feedback
from tests.bots.e2e_support import TG_CHAT, Service, fixture_service  # noqa: F401
from tests.bots.pipeline_kit import until
from tests.fakes.llm import Behaviour
from tests.fakes.telegram import Call

QUESTION = "What is the capital of France?"
FRUSTRATED = "That's wrong!!! you didn't answer my question"


def turn_of(call: Call) -> str:
    """The turn id in a final message's buttons."""
    markup = call.params["reply_markup"]
    assert isinstance(markup, dict)
    rows = markup["inline_keyboard"]
    assert isinstance(rows, list)
    assert isinstance(rows[0], list)
    assert isinstance(rows[0][0], dict)
    parsed = parse_feedback(str(rows[0][0]["callback_data"]))
    assert parsed is not None
    return parsed[0]


def final_message_id(service: Service) -> int:
    """The platform id of our newest message with buttons."""
    return max(mid for (chat, mid), m in service.telegram.messages.items() if "reply_markup" in m)


async def answers(service: Service, count: int) -> list[Call]:
    await until(lambda: len(service.tg_finals()) >= count)
    return service.tg_finals()


async def test_a_message_is_answered_once_with_buttons_even_if_delivered_again(
    service: Service,
) -> None:
    service.llm.script("fast-groq", Behaviour(text="Paris is the capital of France."))
    update = service.tg_text(QUESTION)

    statuses = [await service.post_telegram(update), await service.post_telegram(update)]
    [final] = await answers(service, 1)
    statuses.append(await service.post_telegram(update))  # Telegram retries after the answer
    await asyncio.sleep(0.3)

    assert statuses == [200, 200, 200]
    assert len(service.tg_finals()) == 1
    assert final.params["text"] == "Paris is the capital of France."
    assert final.params["chat_id"] == TG_CHAT
    assert service.llm.count("fast-groq") == 1
    assert service.telegram.calls_to("sendChatAction")


async def test_a_frustrated_follow_up_is_answered_again_one_tier_up_with_a_notice(
    service: Service,
) -> None:
    service.llm.script("fast-groq", Behaviour(text="Berlin."))
    service.llm.script("mid-claude", Behaviour(text="Paris, sorry.", ttft=1.0))
    assert await service.post_telegram(service.tg_text(QUESTION)) == 200
    first = turn_of((await answers(service, 1))[0])

    assert await service.post_telegram(service.tg_text(FRUSTRATED)) == 200
    second = (await answers(service, 2))[1]

    assert second.params["text"] == "Paris, sorry."
    drafts = [c.params["text"] for c in service.telegram.calls_to("sendMessageDraft")]
    assert "Let me try a stronger model…" in drafts
    assert service.llm.count("mid-claude") == 1
    assert await service.events_of("misroute") == [(turn_of(second), first, "frustration")]


async def test_thumbs_down_and_stronger_answer_the_question_again_one_tier_up(
    service: Service,
) -> None:
    service.llm.script("mid-claude", Behaviour(text="A better answer."))
    service.llm.script("top-gpt", Behaviour(text="The best answer."))
    assert await service.post_telegram(service.tg_text(QUESTION)) == 200
    first = turn_of((await answers(service, 1))[0])

    down = service.tg_press(f"fb:{first}:down", final_message_id(service))
    assert await service.post_telegram(down) == 200
    second = turn_of((await answers(service, 2))[1])
    stronger = service.tg_press(f"fb:{second}:stronger", final_message_id(service))
    assert await service.post_telegram(stronger) == 200
    finals = await answers(service, 3)

    assert [c.params["text"] for c in finals] == [
        "Hello from the fake model.",
        "A better answer.",
        "The best answer.",
    ]
    acks = [c.params["text"] for c in service.telegram.calls_to("answerCallbackQuery")]
    assert acks == ["Let me try a stronger model…"] * 2
    misroutes = await service.events_of("misroute", 2)
    assert sorted((related, cause) for _, related, cause in misroutes) == [
        (first, "rating_down"),
        (second, "stronger_asked"),
    ]


async def test_a_stop_press_stops_a_slow_stream(service: Service) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    service.llm.script("fast-groq", Behaviour(text=words, tokens_per_second=20))
    assert await service.post_telegram(service.tg_text("Tell me a long story")) == 200
    await until(
        lambda: any("word2" in str(c.params) for c in service.telegram.calls_to("sendMessageDraft"))
    )

    [draft] = service.telegram.draft_ids(TG_CHAT)
    assert await service.post_telegram(service.tg_stop(draft)) == 200
    [final] = await answers(service, 1)

    assert str(final.params["text"]).endswith("⏹ Stopped</i>")
    assert len(str(final.params["text"])) < len(words)
    async with asyncio.timeout(5):
        await service.llm.disconnected("fast-groq")
    assert len(await service.events_of("stop_pressed")) == 1


async def test_a_stop_press_for_an_earlier_draft_does_not_stop_the_next_answer(
    service: Service,
) -> None:
    assert await service.post_telegram(service.tg_text(QUESTION)) == 200
    await answers(service, 1)
    [earlier] = service.telegram.draft_ids(TG_CHAT)
    assert await service.post_telegram(service.tg_stop(earlier)) == 200  # after it ended
    words = " ".join(f"word{i}" for i in range(40))
    service.llm.script("fast-groq", Behaviour(text=words, tokens_per_second=40))
    assert await service.post_telegram(service.tg_text("Tell me a long story")) == 200
    await until(lambda: len(service.telegram.draft_ids(TG_CHAT)) == 2)

    assert await service.post_telegram(service.tg_stop(earlier)) == 200  # while the next streams
    assert (
        await service.post_telegram(service.tg_stop(max(service.telegram.draft_ids(TG_CHAT)) + 1))
        == 200
    )
    second = (await answers(service, 2))[1]

    assert second.params["text"] == words
    assert len(await service.events_of("stop_pressed", 3)) == 3
