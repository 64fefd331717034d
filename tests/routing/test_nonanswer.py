"""Non-answer detection: refusals and "I don't know" openings, in several languages."""

from __future__ import annotations

import pytest

from routing.nonanswer import non_answer


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I’m afraid I don’t know the answer.",
        "I cannot assist with this request.",
        "I don't know.",
        "I don't have enough information to answer.",
        "As an AI language model, I cannot browse the internet.",
        "I'm not sure.",
        "Lo siento, no puedo ayudarte con eso.",
        "No lo sé.",
        "Desculpe, não posso ajudar com isso.",
        "Não sei.",
        "Es tut mir leid, das kann ich nicht beantworten.",
        "Ich weiß es nicht.",
        "Извините, я не могу с этим помочь.",
        "Не знаю.",
    ],
)
def test_refusals_and_dont_knows_are_non_answers(text: str) -> None:
    assert non_answer(text) == "refusal or 'I don't know' answer"


@pytest.mark.parametrize(
    "text",
    [
        "Turn it off and on again.",
        "Sure! Here is how: first, I can't stress enough how important backups are.",
        "The capital of France is Paris. I don't know about its population today.",
        "Puedes reiniciar el router desde la aplicación.",
        "I'm not sure which model you have, but most reset with a pin: hold it 10 s.",
    ],
)
def test_answers_that_help_are_answers(text: str) -> None:
    assert non_answer(text) is None


def test_blank_text_is_an_empty_answer() -> None:
    assert non_answer("  \n ") == "empty answer"
