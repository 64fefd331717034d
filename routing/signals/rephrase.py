"""Rephrase signal: whether the newest user message repeats a recent one, by lexical similarity."""

from __future__ import annotations

import logging
import re
from typing import Final

from rapidfuzz import fuzz

from routing.types import Conversation, Reason, RephraseResult, Turn

logger = logging.getLogger(__name__)

MAX_CHARS: Final = 2_000
"""Only the last this-many characters of a message are compared, so huge pastes stay cheap."""

MIN_CHARS: Final = 8
"""A message shorter than this once normalised ("what?", "why not") is too short to compare."""

_ACKNOWLEDGEMENT_WORDS: Final = (
    "ok okay k yes yeah yep yup no nope sure thanks thank you thx ty please pls great good fine"
    " cool nice perfect alright right hi hello hey bye got it sorry",
    "sí si vale gracias bueno bien claro perfecto hola adiós adios dale de acuerdo muchas",
    "sim não nao obrigado obrigada valeu beleza certo tá ta bom perfeito olá oi tchau muito",
    "да нет ок ага угу спасибо хорошо ладно понятно пожалуйста привет пока спс норм отлично",
    "ja nein danke gut klar super bitte genau hallo tschüss vielen",
)  # en, es, pt, ru (ё folded to е), de
ACKNOWLEDGEMENTS: Final = frozenset(w for words in _ACKNOWLEDGEMENT_WORDS for w in words.split())
"""Words that make a message trivial when it has no others: "ok thanks" never counts."""

_TOKEN: Final = re.compile(r"\w+")


def rephrase(
    conversation: Conversation, *, window_turns: int, window_seconds: float, threshold: float
) -> RephraseResult:
    """Score how closely the newest user message repeats one of the user's recent messages.

    The window is the `window_turns` user messages before the newest one, minus those more than
    `window_seconds` older than it (when both have a timestamp). The score is the best
    similarity in [0, 1]; at or above `threshold` the repeated turn is returned in `repeats`.

    Similarity is rapidfuzz's token-set ratio of casefolded words: word order does not matter,
    and re-asking part of an earlier request ("what is the area?" after "can I get the area,
    phone number and address?") scores high. Because that ratio is generous to short subsets,
    trivial messages ("ok", "yes", "thanks", "да") are never compared.
    """
    newest, earlier = _window(conversation.turns, window_turns)
    if newest is None:
        return RephraseResult(score=0.0)
    text = _normalise(newest.text)
    if _is_trivial(text):
        return RephraseResult(score=0.0)
    best, best_turn, best_back = 0.0, None, 0
    for back, turn in enumerate(earlier, start=1):
        if not _within(newest, turn, window_seconds):
            continue
        other = _normalise(turn.text)
        if _is_trivial(other):
            continue
        score = fuzz.token_set_ratio(text, other) / 100.0
        if score > best:
            best, best_turn, best_back = score, turn, back
    if best_turn is None or best < threshold:
        return RephraseResult(score=best)
    turns = "turn" if best_back == 1 else "turns"
    reason = Reason(
        code="rephrase",
        text=f"{best:.0%} similar to the user's message {best_back} {turns} back",
    )
    return RephraseResult(score=best, reasons=(reason,), repeats=best_turn)


def _window(turns: tuple[Turn, ...], window_turns: int) -> tuple[Turn | None, list[Turn]]:
    """Return the newest user turn and up to `window_turns` user turns before it, newest first."""
    newest: Turn | None = None
    earlier: list[Turn] = []
    for turn in reversed(turns):
        if turn.role != "user":
            continue
        if newest is None:
            newest = turn
        elif len(earlier) < window_turns:
            earlier.append(turn)
        else:
            break
    return newest, earlier


def _within(newest: Turn, earlier: Turn, window_seconds: float) -> bool:
    """Tell whether `earlier` is recent enough; a turn without a timestamp always is."""
    if newest.ts is None or earlier.ts is None:
        return True
    return newest.ts - earlier.ts <= window_seconds


def _normalise(text: str) -> str:
    """Return the message's words, casefolded (ё as е), separated by single spaces."""
    return " ".join(_TOKEN.findall(text[-MAX_CHARS:].casefold().replace("ё", "е")))


def _is_trivial(normalised: str) -> bool:
    """Tell whether a normalised message is too short or only acknowledgement words."""
    return len(normalised) < MIN_CHARS or ACKNOWLEDGEMENTS.issuperset(normalised.split())
