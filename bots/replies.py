"""The pipeline's short fixed replies (limits, retries, button answers) in the user's language."""

from __future__ import annotations

import re
from typing import Literal

from bots.types import InboundMessage

Reply = Literal["stronger", "rate_limited", "budget", "thanks", "unknown_turn", "retried_enough"]
LANGUAGES = ("en", "es", "pt", "ru", "de")

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")

_TEXTS: dict[Reply, tuple[str, str, str, str, str]] = {
    "stronger": (
        "Let me try a stronger model…",
        "Déjame intentarlo con un modelo más potente…",
        "Deixe-me tentar com um modelo mais forte…",
        "Попробую более сильную модель…",
        "Ich versuche es mit einem stärkeren Modell…",
    ),
    "rate_limited": (
        "You're sending messages faster than I can answer. Please wait a minute.",
        "Envías mensajes más rápido de lo que puedo responder. Espera un minuto, por favor.",
        "Você está enviando mensagens rápido demais. Aguarde um minuto, por favor.",
        "Вы пишете быстрее, чем я успеваю отвечать. Подождите минуту, пожалуйста.",
        "Du schreibst schneller, als ich antworten kann. Bitte warte eine Minute.",
    ),
    "budget": (
        "You've reached today's usage limit. Please come back tomorrow.",
        "Has alcanzado el límite de uso de hoy. Vuelve mañana, por favor.",
        "Você atingiu o limite de uso de hoje. Volte amanhã, por favor.",
        "Вы исчерпали лимит на сегодня. Возвращайтесь завтра.",
        "Du hast dein heutiges Limit erreicht. Bitte komm morgen wieder.",
    ),
    "thanks": (
        "Thanks for the feedback!",
        "¡Gracias por tu opinión!",
        "Obrigado pelo feedback!",
        "Спасибо за отзыв!",
        "Danke für das Feedback!",
    ),
    "unknown_turn": (
        "Sorry, that answer is too old to act on.",
        "Lo siento, esa respuesta es demasiado antigua.",
        "Desculpe, essa resposta é antiga demais.",
        "Извините, этот ответ уже слишком старый.",
        "Entschuldigung, diese Antwort ist zu alt.",
    ),
    "retried_enough": (
        "I've already tried stronger models for this question.",
        "Ya probé modelos más potentes para esta pregunta.",
        "Já tentei modelos mais fortes para esta pergunta.",
        "Я уже пробовал более сильные модели для этого вопроса.",
        "Ich habe für diese Frage schon stärkere Modelle versucht.",
    ),
}


def language_of(message: InboundMessage) -> str:
    """The message's language among ours: the platform's code (`pt-BR` → `pt`), else a guess
    from the text (Cyrillic → ru), else English."""
    code = (message.language or "").replace("_", "-").split("-", 1)[0].lower()
    if code in LANGUAGES:
        return code
    if not code and _CYRILLIC.search(message.text):
        return "ru"
    return "en"


def reply(kind: Reply, message: InboundMessage) -> str:
    """The fixed reply `kind` in the language of `message`."""
    return _TEXTS[kind][LANGUAGES.index(language_of(message))]
