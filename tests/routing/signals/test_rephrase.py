"""Tests of the rephrase signal: similarity, the turn and time window, and trivial messages."""

from __future__ import annotations

import pytest

from routing.signals.rephrase import rephrase
from routing.types import Conversation, Reason, RephraseResult, Turn


def check(conversation: Conversation) -> RephraseResult:
    """The signal with the recommended settings: 3 turns, 30 minutes, threshold 0.65."""
    return rephrase(conversation, window_turns=3, window_seconds=1800.0, threshold=0.65)


def chat(*user_texts: str, gap: float | None = 60.0) -> Conversation:
    """User messages `gap` seconds apart (no timestamps if None), each answered but the last."""
    turns: list[Turn] = []
    for index, text in enumerate(user_texts):
        ts = None if gap is None else index * gap
        turns += [Turn(role="user", text=text, ts=ts), Turn(role="assistant", text="Sure.")]
    return Conversation(turns=tuple(turns[:-1]))


def test_empty_conversation_scores_zero() -> None:
    assert check(Conversation(turns=())) == RephraseResult(score=0.0)


def test_first_message_scores_zero() -> None:
    assert check(chat("Is the museum open on Sunday?")) == RephraseResult(score=0.0)


def test_verbatim_repeat_of_the_previous_message() -> None:
    conversation = chat("is it in the north part of town", "is it in the north part of town")
    assert check(conversation) == RephraseResult(
        score=1.0,
        reasons=(Reason(code="rephrase", text="100% similar to the user's message 1 turn back"),),
        repeats=conversation.turns[0],
    )


def test_case_punctuation_and_word_order_do_not_matter() -> None:
    conversation = chat("Is it in the NORTH part of town?", "in the north part of town, is it")
    assert check(conversation).score == 1.0


def test_re_asking_part_of_an_earlier_request_counts() -> None:
    conversation = chat(
        "Could I get the area, phone number, and address of the Kettles yard?",
        "What is the area?",
    )
    result = check(conversation)
    assert (round(result.score, 2), result.repeats) == (0.67, conversation.turns[0])


def test_unrelated_message_is_not_a_rephrase() -> None:
    result = check(chat("Book a table for two at 7pm", "What's the weather in Rome?"))
    assert (result.score < 0.5, result.reasons, result.repeats) == (True, (), None)


def test_below_threshold_reports_the_score_without_a_repeat() -> None:
    conversation = chat("I need a cheap hotel in the north", "a cheap hotel in the north please")
    score = check(conversation).score
    assert rephrase(conversation, window_turns=3, window_seconds=1800.0, threshold=1.01) == (
        RephraseResult(score=score)
    )


def test_the_most_similar_earlier_message_wins_and_ties_go_to_the_newest() -> None:
    conversation = chat(
        "train to Cambridge on Friday",
        "a hotel near the station",
        "train to Cambridge on Friday",
        "what time is the train to Cambridge on Friday?",
    )
    assert check(conversation).repeats is conversation.turns[4]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ok", "ok"),
        ("yes please", "Yes, please!"),
        ("thanks", "thank you"),
        ("да", "Да."),
        ("what?", "what?"),
        ("Gracias", "gracias"),
        ("ja, danke", "Ja danke"),
    ],
)
def test_trivial_messages_are_never_rephrases(first: str, second: str) -> None:
    assert check(chat(first, second)) == RephraseResult(score=0.0)


def test_trivial_earlier_messages_are_skipped() -> None:
    conversation = chat(
        "where is the nearest pharmacy", "ok thanks", "where's the nearest pharmacy"
    )
    result = check(conversation)
    assert (result.repeats, result.reasons[0].text) == (
        conversation.turns[0],
        f"{result.score:.0%} similar to the user's message 2 turns back",
    )


def test_only_the_last_window_turns_user_messages_count() -> None:
    conversation = chat("reset my password", "a", "b", "c", "reset my password")
    outside = rephrase(conversation, window_turns=3, window_seconds=1800.0, threshold=0.65)
    inside = rephrase(conversation, window_turns=4, window_seconds=1800.0, threshold=0.65)
    assert (outside.score, inside.repeats) == (0.0, conversation.turns[0])


def test_zero_window_turns_compares_nothing() -> None:
    conversation = chat("reset my password", "reset my password")
    assert rephrase(conversation, window_turns=0, window_seconds=1800.0, threshold=0.65) == (
        RephraseResult(score=0.0)
    )


def test_messages_older_than_window_seconds_do_not_count() -> None:
    conversation = chat("reset my password", "reset my password", gap=600.0)
    old = rephrase(conversation, window_turns=3, window_seconds=599.0, threshold=0.65)
    recent = rephrase(conversation, window_turns=3, window_seconds=600.0, threshold=0.65)
    assert (old.score, recent.score) == (0.0, 1.0)


def test_messages_without_timestamps_are_always_in_the_time_window() -> None:
    conversation = chat("reset my password", "reset my password", gap=None)
    assert rephrase(conversation, window_turns=3, window_seconds=0.0, threshold=0.65).score == 1.0


def test_assistant_turns_are_not_compared() -> None:
    turns = (
        Turn(role="assistant", text="Would you like to reset your password?"),
        Turn(role="user", text="Would you like to reset your password?"),
    )
    assert check(Conversation(turns=turns)) == RephraseResult(score=0.0)


def test_cyrillic_with_yo_written_as_ye() -> None:
    conversation = chat("Где её заказ на завтра?", "где ее заказ на завтра")
    assert check(conversation).score == 1.0


def test_huge_messages_compare_their_ends() -> None:
    tail = " please reset my password" * 100
    conversation = chat("A" * 50_000 + tail, "B" * 50_000 + tail)
    assert check(conversation).score == 1.0
