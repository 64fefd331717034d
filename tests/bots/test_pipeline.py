"""The pipeline turn by turn: limits, routing, streaming, records, retries one tier up, feedback."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from bots.delivery import feedback_payload
from bots.errors import BotError, DeliveryFailed, StoreUnavailable
from bots.formatting import apology
from bots.history import RedisHistory
from bots.limits import LimitSettings
from bots.pipeline import Pipeline, escalation_cause
from bots.replies import Reply, language_of, reply
from bots.types import InboundMessage
from feedback.types import EventKind
from routing.types import Decision, Reason, Scores
from tests.bots.pipeline_kit import (  # noqa: F401
    CHAT,
    USER,
    Kit,
    execution,
    fixture_make_kit,
    until,
)
from tests.bots.redis_fixtures import free_port
from tests.fakes.llm import Behaviour
from tests.fakes.telegram import Call, Fault

QUESTION = "What is the capital of France?"
FRUSTRATED = "That's wrong!!! you didn't answer my question"
MakeKit = Callable[..., Kit]


def said(kind: Reply, language: str | None = None, text: str = "") -> str:
    """Our fixed reply `kind` for a message in `language`."""
    message = InboundMessage(
        channel="telegram",
        dedupe_key="-",
        chat_id=CHAT,
        user_id=USER,
        kind="text",
        text=text,
        language=language,
    )
    return reply(kind, message)


def buttons(call: Call) -> list[str]:
    """The callback data of a message's inline keyboard, row by row."""
    markup = call.params["reply_markup"]
    assert isinstance(markup, dict)
    rows = markup["inline_keyboard"]
    assert isinstance(rows, list)
    found = []
    for row in rows:
        assert isinstance(row, list)
        for button in row:
            assert isinstance(button, dict)
            found.append(str(button["callback_data"]))
    return found


def sent_texts(kit: Kit) -> list[str]:
    return [str(call.params.get("text")) for call in kit.telegram.calls_to("sendMessage")]


def escalations(kit: Kit, *causes: str) -> list[float | None]:
    """`tierbot_escalations_total` of each cause, as the kit's metrics count it; checks first
    that the metrics count exactly the escalation events the feedback log got."""
    metrics = kit.parts.metrics
    assert metrics is not None
    logged = Counter(event.cause for event in kit.sink.of(EventKind.ESCALATION))
    for cause, count in logged.items():
        assert cause is not None
        assert (
            metrics.registry.get_sample_value("tierbot_escalations_total", {"cause": cause})
            == count
        )
    return [
        metrics.registry.get_sample_value("tierbot_escalations_total", {"cause": c}) for c in causes
    ]


def test_replies_speak_the_users_language() -> None:
    assert said("thanks", "pt-BR") == "Obrigado pelo feedback!"
    assert said("thanks", "fr") == "Thanks for the feedback!"
    assert said("thanks", None, "Спасибо, а что дальше?") == "Спасибо за отзыв!"
    assert said("stronger", "de_AT") == "Ich versuche es mit einem stärkeren Modell…"
    assert said("budget", "ES") == said("budget", "es")
    assert (
        language_of(
            InboundMessage(
                channel="whatsapp",
                dedupe_key="-",
                chat_id=CHAT,
                user_id=USER,
                kind="text",
                text="Hola",
            )
        )
        == "en"
    )


def test_an_escalation_cause_is_the_raising_reasons_else_policy() -> None:
    def decision(tier: int, *codes: str) -> Decision:
        return Decision(
            tier=tier,
            tier_name=f"t{tier}",
            scores=Scores(complexity=0.1, frustration=0.0, rephrase=0.0, history_tokens=0),
            confidence=0.9,
            reasons=tuple(Reason(code=code, text=code) for code in codes),
        )

    raised = decision(3, "base_tier", "rule", "escalate_failed_answer", "rule", "retries_used")
    assert escalation_cause(raised, base_tier=1) == "rule,escalate_failed_answer"
    assert escalation_cause(decision(2, "base_tier"), base_tier=1) == "policy"
    assert escalation_cause(decision(2, "rule"), base_tier=2) is None


async def test_a_text_turn_is_streamed_recorded_and_remembered(make_kit: MakeKit) -> None:
    kit = make_kit()
    kit.llm.script("fast-groq", Behaviour(text="Paris is the capital of France."))

    sent = await kit.ask(QUESTION)

    assert sent is not None
    assert kit.telegram.calls_to("sendChatAction")
    assert [c.params["text"] for c in kit.finals()] == ["Paris is the capital of France."]
    turn = kit.sink.turns[0]
    assert (turn.tier, turn.provider, turn.model, turn.outcome) == (1, "groq", "fast-groq", "ok")
    assert (turn.channel, turn.surface, turn.user_id, turn.chat_id) == (
        "telegram",
        "private",
        USER,
        CHAT,
    )
    assert (turn.message_text, turn.answer_text) == (QUESTION, "Paris is the capital of France.")
    assert turn.cost_usd > 0
    assert turn.cost_if_top == turn.cost_if_mid == pytest.approx(turn.cost_usd)
    assert turn.reasons[0].code == "base_tier"
    assert [(a.provider, a.model, a.error) for a in turn.attempts] == [("groq", "fast-groq", None)]
    history = await kit.parts.history.load(CHAT)
    assert [(t.role, t.text, t.tier, t.turn_id) for t in history] == [
        ("user", QUESTION, None, f"{turn.turn_id}.q"),
        ("assistant", "Paris is the capital of France.", 1, turn.turn_id),
    ]
    assert await kit.parts.ledger.turn_of(CHAT, sent) == turn.turn_id
    assert await kit.parts.budget.spent(USER) == pytest.approx(turn.cost_usd)
    assert buttons(kit.finals()[0]) == [
        feedback_payload(turn.turn_id, choice) for choice in ("up", "down", "stronger")
    ]
    assert kit.sink.events == []
    assert kit.parts.metrics is not None
    exported = kit.parts.metrics.render().decode()
    assert (
        'tierbot_provider_requests_total{model="fast-groq",outcome="ok",provider="groq"} 1.0'
        in exported
    )
    assert 'tierbot_first_token_seconds_count{provider="groq",tier="1"} 1.0' in exported


async def test_messages_that_arrived_together_are_one_turn_and_a_redelivery_one_history(
    make_kit: MakeKit,
) -> None:
    kit = make_kit()
    first, second = kit.entry(text="Hello"), kit.entry(text="how are you?")

    await kit.pipeline((first, second))
    await kit.pipeline((first, second))  # redelivered after a crash before the ack

    body = kit.llm.last("fast-groq").body
    assert isinstance(body, dict)
    messages = body["messages"]
    assert isinstance(messages, list)
    assert messages[-1] == {"role": "user", "content": "Hello\nhow are you?"}
    assert kit.sink.turns[0].turn_id == kit.sink.turns[1].turn_id
    assert len(await kit.parts.history.load(CHAT)) == 2


async def test_over_the_rate_limit_or_budget_the_user_is_told_and_no_model_is_called(
    make_kit: MakeKit,
) -> None:
    kit = make_kit(limits=LimitSettings(messages_per_window=1, daily_usd=1.0))
    await kit.ask(QUESTION)

    assert await kit.ask("Und Deutschland?", language="de") is None
    assert sent_texts(kit)[-1] == said("rate_limited", "de")

    budgeted = make_kit()
    await budgeted.parts.budget.add(USER, 5.0)
    assert await budgeted.ask("¿Y Alemania?", language="es") is None

    assert sent_texts(budgeted)[-1] == said("budget", "es")
    assert kit.llm.count("fast-groq") == 1
    assert kit.sink.kinds() == [EventKind.RATE_LIMITED]
    assert budgeted.sink.kinds() == [EventKind.BUDGET_BLOCKED]


async def test_a_frustrated_follow_up_is_answered_again_one_tier_up_a_bounded_number_of_times(
    make_kit: MakeKit,
) -> None:
    kit = make_kit(settings=execution(max_retries_per_question=1))
    kit.llm.script("fast-groq", Behaviour(text="Berlin."))
    kit.llm.script("mid-claude", Behaviour(text="Paris.", ttft=0.3))
    await kit.ask(QUESTION)
    first = kit.last_turn_id()

    await kit.ask(FRUSTRATED)

    retry = kit.sink.turns[-1]
    assert (retry.tier, retry.model, retry.answer_text) == (2, "mid-claude", "Paris.")
    drafts = [call.params["text"] for call in kit.telegram.calls_to("sendMessageDraft")]
    assert said("stronger") in drafts
    assert [(e.kind, e.turn_id, e.related_turn_id, e.cause) for e in kit.sink.events] == [
        (EventKind.MISROUTE, retry.turn_id, first, "frustration"),
        (EventKind.FRUSTRATION_RETRY, retry.turn_id, first, None),
        (EventKind.ESCALATION, retry.turn_id, None, "escalate_failed_answer"),
    ]
    assert escalations(kit, "escalate_failed_answer", "policy") == [1, None]

    await kit.ask("This is STILL wrong!!! you didn't answer my question at all")

    held = kit.sink.turns[-1]
    assert held.tier == 2
    assert "retries_used" in [reason.code for reason in held.reasons]
    assert len(kit.sink.of(EventKind.MISROUTE)) == 1
    assert await kit.parts.ledger.retries(CHAT) == 1
    await kit.ask("How tall is the Eiffel tower?")
    assert await kit.parts.ledger.retries(CHAT) == 0


async def test_a_rephrased_question_is_a_misroute_of_the_earlier_answer(make_kit: MakeKit) -> None:
    kit = make_kit()
    await kit.ask(QUESTION)
    first = kit.last_turn_id()

    await kit.ask("what's the capital city of France?")

    retry = kit.sink.turns[-1]
    assert retry.tier == 2
    assert [(e.kind, e.related_turn_id, e.cause) for e in kit.sink.events] == [
        (EventKind.MISROUTE, first, "rephrase"),
        (EventKind.ESCALATION, None, "escalate_failed_answer"),
    ]


async def press(kit: Kit, turn_id: str, choice: str, message_id: str | None = None) -> str | None:
    """Press one of our buttons on the answer of `turn_id`."""
    payload = feedback_payload(turn_id, choice)
    return await kit.pipeline((kit.entry("feedback", payload=payload, message_id=message_id),))


async def test_buttons_rate_the_turn_and_thumbs_down_or_stronger_answer_it_one_tier_up(
    make_kit: MakeKit,
) -> None:
    kit = make_kit()
    kit.llm.script("mid-claude", Behaviour(text="A better answer."))
    sent = await kit.ask(QUESTION)
    first = kit.last_turn_id()

    assert await press(kit, first, "up", sent) is None
    assert await press(kit, first, "down", sent) is not None
    second = kit.last_turn_id()
    await press(kit, second, "stronger")

    answers = [call.params["text"] for call in kit.telegram.calls_to("answerCallbackQuery")]
    assert answers == [said("thanks"), said("stronger"), said("stronger")]
    assert [(t.tier, t.model) for t in kit.sink.turns] == [
        (1, "fast-groq"),
        (2, "mid-claude"),
        (3, "top-gpt"),
    ]
    assert "feedback" in [reason.code for reason in kit.sink.turns[1].reasons]
    ratings = [(e.turn_id, e.rating) for e in kit.sink.of(EventKind.RATING)]
    assert ratings == [(first, "up"), (first, "down"), (second, "stronger")]
    misroutes = [(e.related_turn_id, e.cause) for e in kit.sink.of(EventKind.MISROUTE)]
    assert misroutes == [(first, "rating_down"), (second, "stronger_asked")]
    assert escalations(kit, "feedback", "escalate_failed_answer,feedback") == [1, 1]
    body = kit.llm.last("mid-claude").body
    assert isinstance(body, dict)
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
    history = await kit.parts.history.load(CHAT)
    assert [(t.role, t.text, t.tier) for t in history][2:4] == [
        ("user", QUESTION, None),
        ("assistant", "A better answer.", 2),
    ]


async def test_a_press_on_an_unknown_turn_or_past_the_retries_only_answers_the_button(
    make_kit: MakeKit,
) -> None:
    kit = make_kit(settings=execution(max_retries_per_question=0))
    await kit.ask(QUESTION)

    await press(kit, kit.last_turn_id(), "down")
    await press(kit, "gone", "down")
    await kit.pipeline((kit.entry("feedback", payload="not-ours"),))

    answers = [call.params["text"] for call in kit.telegram.calls_to("answerCallbackQuery")]
    assert answers == [said("retried_enough"), said("unknown_turn"), said("unknown_turn")]
    assert (len(kit.sink.turns), kit.llm.count("fast-groq")) == (1, 1)
    assert [e.rating for e in kit.sink.of(EventKind.RATING)] == ["down"]


async def test_reactions_statuses_and_stops_become_events(make_kit: MakeKit) -> None:
    kit = make_kit()
    sent = await kit.ask(QUESTION)
    turn = kit.last_turn_id()

    await kit.pipeline(
        (
            kit.entry("reaction", payload="👍🏽", message_id=sent),
            kit.entry("reaction", payload="🔥", message_id=sent),
            kit.entry("reaction", payload="👎", message_id="999"),
            kit.entry("stop", payload="17"),
            kit.entry("status", payload="failed", message_id=sent, text="131047"),
            kit.entry("status", payload="failed", message_id=None, channel="whatsapp"),
            kit.entry("status", payload="read", message_id=sent, channel="whatsapp"),
        )
    )

    assert [(e.kind, e.turn_id, e.rating, e.cause) for e in kit.sink.events] == [
        (EventKind.RATING, turn, "up", "reaction"),
        (EventKind.RATING, None, "down", "reaction"),
        (EventKind.STOP_PRESSED, None, None, None),
        (EventKind.DELIVERY_FAILURE, turn, None, "whatsapp:131047"),
        (EventKind.DELIVERY_FAILURE, None, None, "whatsapp"),
    ]
    assert kit.llm.count("fast-groq") == 1


async def test_a_stop_ends_the_stream_and_keeps_what_was_shown(make_kit: MakeKit) -> None:
    kit = make_kit()
    words = " ".join(f"word{i}" for i in range(80))
    kit.llm.script("fast-groq", Behaviour(text=words, tokens_per_second=40))
    answering = asyncio.create_task(kit.ask(QUESTION))
    await until(
        lambda: any("word3" in str(c.params) for c in kit.telegram.calls_to("sendMessageDraft"))
    )

    [draft] = kit.telegram.draft_ids(int(CHAT))
    assert await kit.stop.press(CHAT, str(draft)) is True
    await answering

    turn = kit.sink.turns[-1]
    assert turn.outcome == "stopped"
    assert turn.answer_text is not None
    assert "word3" in turn.answer_text
    assert len(turn.answer_text) < len(words)
    assert str(kit.finals()[-1].params["text"]).endswith("⏹ Stopped</i>")
    history = await kit.parts.history.load(CHAT)
    assert history[-1].text == turn.answer_text
    async with asyncio.timeout(5):
        await kit.llm.disconnected("fast-groq")


async def test_a_stop_press_for_an_earlier_answer_does_not_stop_the_next(
    make_kit: MakeKit,
) -> None:
    kit = make_kit()
    await kit.ask(QUESTION)
    [earlier] = kit.telegram.draft_ids(int(CHAT))
    assert await kit.stop.press(CHAT, str(earlier)) is False  # pressed after it ended
    words = " ".join(f"word{i}" for i in range(30))
    kit.llm.script("fast-groq", Behaviour(text=words, tokens_per_second=60))
    answering = asyncio.create_task(kit.ask("Tell me a story about Paris"))
    await until(lambda: len(kit.telegram.draft_ids(int(CHAT))) == 2)

    assert await kit.stop.press(CHAT, str(earlier)) is False  # pressed while the next streams
    await answering

    assert (kit.sink.turns[-1].outcome, kit.sink.turns[-1].answer_text) == ("ok", words)
    assert kit.stop.ignored == 2


async def test_a_failed_redelivered_turn_stops_typing_at_once(make_kit: MakeKit) -> None:
    kit = make_kit(typing_interval_s=0.05)
    down = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=None
    )
    pipeline = Pipeline(replace(kit.parts, history=RedisHistory(down)))
    try:
        with pytest.raises(StoreUnavailable):
            await pipeline((kit.entry(text=QUESTION, deliveries=2),))
    finally:
        await down.aclose()
    typing = len(kit.telegram.calls_to("sendChatAction"))
    await asyncio.sleep(0.3)

    assert typing >= 1
    assert len(kit.telegram.calls_to("sendChatAction")) == typing
    assert kit.telegram.calls_to("sendMessage") == []  # a redelivery gets no second apology


async def test_a_failed_turn_apologises_once_and_is_left_for_redelivery(
    make_kit: MakeKit,
) -> None:
    kit = make_kit()
    refused = Fault(status=403, description="Forbidden: bot was blocked by the user")
    kit.telegram.fail("sendMessage", refused)

    with pytest.raises(DeliveryFailed):
        await kit.ask(QUESTION)
    kit.telegram.fail("sendMessage", refused)
    with pytest.raises(DeliveryFailed):
        await kit.pipeline((kit.entry(text=QUESTION, deliveries=2),))
    with pytest.raises(BotError, match="no delivery for the whatsapp channel"):
        await kit.pipeline((kit.entry(text=QUESTION, channel="whatsapp"),))

    assert sent_texts(kit).count(apology(None)) == 1
    assert kit.sink.turns == []


async def test_an_apology_that_cannot_be_sent_is_only_logged(
    make_kit: MakeKit, caplog: pytest.LogCaptureFixture
) -> None:
    kit = make_kit()
    kit.telegram.fail("sendMessage", Fault(status=403, description="Forbidden: blocked"), times=2)

    with pytest.raises(DeliveryFailed):
        await kit.ask(QUESTION)

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bots.pipeline")]
    assert any(line.startswith("apology failed chat=") for line in ours)
    assert [line for line in ours if CHAT in line or USER in line] == []


async def test_a_retry_button_over_the_rate_limit_is_refused(make_kit: MakeKit) -> None:
    kit = make_kit(limits=LimitSettings(messages_per_window=1))
    sent = await kit.ask(QUESTION)

    assert await press(kit, kit.last_turn_id(), "down", sent) is None

    assert sent_texts(kit)[-1] == said("rate_limited")
    assert len(kit.sink.turns) == 1
    assert await kit.parts.ledger.retries(CHAT) == 0
