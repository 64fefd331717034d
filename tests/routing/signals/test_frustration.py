"""Tests of the frustration signal: markers per language, sentiment, style and the previous turn."""

from __future__ import annotations

import pytest

from routing.signals.frustration import frustration, sentiment
from routing.types import Conversation, Reason, SignalResult, Turn

DESCRIPTIONS = {
    "complaint": "complains about the previous answer",
    "insult": "insults the assistant",
    "asks_for_human": "asks for a human agent",
    "confusion": "asks what the previous answer meant",
}


def chat(*user_texts: str) -> Conversation:
    """A conversation of these user messages, each answered by the assistant except the last."""
    turns: list[Turn] = []
    for text in user_texts:
        turns += [Turn(role="user", text=text), Turn(role="assistant", text="Here you go.")]
    return Conversation(turns=tuple(turns[:-1]))


def codes(result: SignalResult) -> set[str]:
    return {reason.code for reason in result.reasons}


def assert_flags(text: str, code: str, lang: str) -> None:
    """The message carries the marker, attributed to `lang`, and scores at least 0.5 by itself."""
    result = frustration(chat(text))
    matched = [reason.text for reason in result.reasons if reason.code == code]
    assert (matched, result.score >= 0.5) == ([f"{DESCRIPTIONS[code]} ({lang})"], True)


def assert_calm(text: str) -> None:
    """The message carries no marker and scores below 0.2."""
    result = frustration(chat(text))
    assert (codes(result) & set(DESCRIPTIONS), result.score < 0.2) == (set(), True)


# --- empty and neutral ----------------------------------------------------------------------


def test_empty_conversation_scores_zero() -> None:
    assert frustration(Conversation(turns=())) == SignalResult(score=0.0)


def test_conversation_without_a_user_turn_scores_zero() -> None:
    turns = (Turn(role="assistant", text="That's wrong, you idiot!!!"),)
    assert frustration(Conversation(turns=turns)) == SignalResult(score=0.0)


def test_neutral_question_scores_zero_without_reasons() -> None:
    assert frustration(chat("Can you book a table for two at 7pm tomorrow?")) == SignalResult(
        score=0.0
    )


# --- markers, one test per language ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("That's wrong.", "complaint"),
        ("No, that is not what I asked", "complaint"),
        ("you didn't answer my question", "complaint"),
        ("that doesn`t make any sense", "complaint"),
        ("As I said, I need it for Friday", "complaint"),
        ("This bot is useless", "complaint"),
        ("you're not very helpful", "complaint"),
        ("you moron", "insult"),
        ("shut up", "insult"),
        ("Let me talk to a human", "asks_for_human"),
        ("Can I speak with a real person?", "asks_for_human"),
        ("transfer me to customer service", "asks_for_human"),
    ],
)
def test_english_markers(text: str, code: str) -> None:
    assert_flags(text, code, "en")


@pytest.mark.parametrize(
    "text",
    [
        "What is the weather in Paris tomorrow?",
        "Thanks, that's exactly what I needed.",
        "I need the API key for AWS and the URL.",
        "Is it right that the museum opens at 9?",
        "Can I speak to you about my booking?",
    ],
)
def test_english_calm_messages(text: str) -> None:
    assert_calm(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Eso está mal", "complaint"),
        ("No es lo que pregunté", "complaint"),
        ("No me respondiste", "complaint"),
        ("Esto no tiene sentido", "complaint"),
        ("Ya te lo dije, el viernes", "complaint"),
        ("Eres un imbécil", "insult"),
        ("Quiero hablar con una persona", "asks_for_human"),
        ("Pásame con un agente humano", "asks_for_human"),
    ],
)
def test_spanish_markers(text: str, code: str) -> None:
    assert_flags(text, code, "es")


@pytest.mark.parametrize(
    "text",
    [
        "¿Puedes decirme el horario del museo?",
        "Quiero reservar una mesa para dos",
        "Gracias, muy útil",
        "No, gracias.",
        "¿Cuál es la capital de Francia?",
    ],
)
def test_spanish_calm_messages(text: str) -> None:
    assert_calm(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Isso está errado", "complaint"),
        ("Não foi isso que eu perguntei", "complaint"),
        ("Você não respondeu", "complaint"),
        ("Não faz sentido nenhum", "complaint"),
        ("Seu burro", "insult"),
        ("Quero falar com um atendente", "asks_for_human"),
        ("Posso falar com uma pessoa real?", "asks_for_human"),
    ],
)
def test_portuguese_markers(text: str, code: str) -> None:
    assert_flags(text, code, "pt")


@pytest.mark.parametrize(
    "text",
    [
        "Qual é o horário do museu?",
        "Obrigado, foi muito útil",
        "Quero reservar um hotel em Lisboa",
        "Não, obrigado",
    ],
)
def test_portuguese_calm_messages(text: str) -> None:
    assert_calm(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Это неправильно", "complaint"),
        ("Ты не ответил на мой вопрос", "complaint"),
        ("Это не то, что я спрашивал", "complaint"),
        ("Бред какой-то", "complaint"),
        ("Я же сказал: на пятницу", "complaint"),
        ("Ты тупой", "insult"),
        ("Позовите оператора", "asks_for_human"),
        ("Хочу поговорить с живым человеком", "asks_for_human"),
    ],
)
def test_russian_markers(text: str, code: str) -> None:
    assert_flags(text, code, "ru")


@pytest.mark.parametrize(
    "text",
    [
        "Какая завтра погода в Москве?",
        "Спасибо, всё понятно",
        "Забронируй столик на двоих",
        "Тупой угол больше 90 градусов?",
    ],
)
def test_russian_calm_messages(text: str) -> None:
    assert_calm(text)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Das ist falsch", "complaint"),
        ("Das ist nicht, was ich gefragt habe", "complaint"),
        ("Du hast meine Frage nicht beantwortet", "complaint"),
        ("Das ergibt keinen Sinn", "complaint"),
        ("Du bist so dumm", "insult"),
        ("Das ist doch Scheiße", "insult"),
        ("Ich möchte mit einem Menschen sprechen", "asks_for_human"),
        ("Verbinden Sie mich bitte", "asks_for_human"),
    ],
)
def test_german_markers(text: str, code: str) -> None:
    assert_flags(text, code, "de")


@pytest.mark.parametrize(
    "text",
    [
        "Wie ist das Wetter morgen in Berlin?",
        "Danke, das hilft mir sehr",
        "Ich möchte einen Tisch für zwei reservieren",
        "Nein, danke",
    ],
)
def test_german_calm_messages(text: str) -> None:
    assert_calm(text)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("what do you mean?", "en"),
        ("¿De qué hablas?", "es"),
        ("Como assim?", "pt"),
        ("О чём ты вообще говоришь?", "ru"),
        ("Wovon redest du?", "de"),
    ],
)
def test_confusion_alone_stays_below_half(text: str, lang: str) -> None:
    result = frustration(chat(text))
    assert result.reasons[0] == Reason(
        code="confusion", text=f"asks what the previous answer meant ({lang})"
    )
    assert round(result.score, 9) == 0.3


def test_markers_match_whole_words_only() -> None:
    assert_calm("Our idiotproof kit ships with a humanoid agenda")


def test_curly_apostrophes_are_folded() -> None:
    assert "complaint" in codes(frustration(chat("That’s WRONG")))


@pytest.mark.parametrize(
    ("text", "langs"), [("you idiot", "en, de"), ("idiota", "es, pt"), ("useless", "en")]
)
def test_a_phrase_shared_by_languages_names_them_all(text: str, langs: str) -> None:
    reasons = frustration(chat(text)).reasons
    assert reasons[0].text.endswith(f"({langs})")


# --- sentiment --------------------------------------------------------------------------------


def test_sentiment_is_vader_compound() -> None:
    assert (sentiment("I love it") > 0.5, sentiment("This is terrible") < -0.4) == (True, True)


def test_sentiment_is_zero_for_text_vader_has_no_words_for() -> None:
    assert (sentiment("Какая завтра погода?"), sentiment("")) == (0.0, 0.0)


def test_sentiment_reads_only_the_last_280_characters() -> None:
    calm_tail = " the" * 70  # 280 characters, starting with a space
    assert (sentiment("terrible" + calm_tail), sentiment(calm_tail)) == (0.0, 0.0)


def test_sentiment_keeps_a_whole_first_word() -> None:
    tail = "happy" + " the" * 68 + " ab"  # 280 characters
    assert sentiment("terrible " + tail) == sentiment(tail) > 0.0


def test_sentiment_drops_a_word_cut_by_the_limit() -> None:
    text = "unhappy" + " the" * 68 + " ab"  # the last 280 characters start inside "unhappy"
    assert (sentiment(text), sentiment("happy" + " the" * 68 + " ab") > 0.0) == (0.0, True)


def test_negative_sentiment_alone_scores_by_compound() -> None:
    text = "This is terrible, I hate it"
    result = frustration(chat(text))
    assert (codes(result), round(result.score, 9)) == (
        {"negative_sentiment"},
        round(0.7 * -sentiment(text), 9),
    )


def test_negated_positive_counts_as_negative() -> None:
    assert codes(frustration(chat("I don't like this answer"))) == {"negative_sentiment"}


def test_negative_emoji_counts_as_negative() -> None:
    assert codes(frustration(chat("ok 😠"))) == {"negative_sentiment"}


def test_polite_text_has_no_negative_sentiment() -> None:
    assert frustration(chat("Great, thank you so much, that was helpful")) == SignalResult(
        score=0.0
    )


# --- style: repeated punctuation and shouting --------------------------------------------------


def test_repeated_punctuation() -> None:
    result = frustration(chat("Where is my order??"))
    assert (result.reasons, round(result.score, 9)) == (
        (Reason(code="repeated_punctuation", text="repeated ? or ! marks"),),
        0.2,
    )


def test_shouting() -> None:
    result = frustration(chat("WHERE IS MY ORDER"))
    assert (codes(result), round(result.score, 9)) == ({"shouting"}, 0.3)


@pytest.mark.parametrize(
    "text", ["I need the API key for AWS", "OK", "NASA and ESA launched it", "Send it to NYC asap"]
)
def test_acronyms_are_not_shouting(text: str) -> None:
    assert "shouting" not in codes(frustration(chat(text)))


def test_shouting_in_cyrillic() -> None:
    result = frustration(chat("ЭТО НЕПРАВИЛЬНО"))
    assert codes(result) == {"complaint", "shouting"}


def test_enthusiasm_counts_half() -> None:
    result = frustration(chat("THANK YOU SO MUCH!!!"))
    assert (codes(result), round(result.score, 9)) == (
        {"shouting", "repeated_punctuation"},
        round(1 - (1 - 0.15) * (1 - 0.1), 9),
    )


# --- combination, previous turn and limits -----------------------------------------------------


def test_signs_combine_without_exceeding_one() -> None:
    result = frustration(chat("YOU ARE USELESS, YOU IDIOT!!! GET ME A HUMAN"))
    assert codes(result) == {
        "insult",
        "asks_for_human",
        "complaint",
        "negative_sentiment",
        "shouting",
        "repeated_punctuation",
    }
    assert 0.95 < result.score <= 1.0


def test_previous_user_turn_counts_at_lower_weight() -> None:
    result = frustration(chat("That's wrong, you idiot", "And the address?"))
    assert SignalResult(score=round(result.score, 9), reasons=result.reasons) == SignalResult(
        score=round(0.4 * (1 - 0.3 * 0.45), 9),
        reasons=(
            Reason(
                code="earlier_frustration",
                text="the previous user message scored 0.86 (insult, complaint)",
            ),
        ),
    )


def test_previous_user_turn_tone_does_not_carry_over() -> None:
    assert frustration(chat("This is terrible!!!", "And the address?")) == SignalResult(score=0.0)


def test_only_the_last_part_of_a_huge_message_is_examined() -> None:
    filler = " please check the schedule" * 400
    head = frustration(chat("That's wrong." + filler))
    tail = frustration(chat(filler + " That's wrong."))
    assert (head.score, "complaint" in codes(tail)) == (0.0, True)
