"""Frustration signal: how annoyed the newest user message is, from sentiment and markers."""

from __future__ import annotations

import functools
import logging
import re
import string
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

from routing.signals.markers import ASKS_FOR_HUMAN, COMPLAINT, CONFUSION, INSULT, MarkerTable
from routing.types import Conversation, Reason, SignalResult, Turn

logger = logging.getLogger(__name__)

MAX_CHARS: Final = 2_000
"""Only the last this-many characters of a message are examined, so huge pastes stay cheap."""

SENTIMENT_CHARS: Final = 280
"""VADER reads only the last this-many characters (at a word boundary): it was validated on
tweets, and its cost grows with the square of the length (~50 µs at 100 chars, ~6 ms at 2,000)."""

NEGATIVE_SENTIMENT: Final = -0.05
"""VADER compound at or below which a message counts as negative (VADER's own cut-off)."""

SENTIMENT_WEIGHT: Final = 0.7
"""Evidence from sentiment is this times the negative compound: -0.5 gives 0.35."""

POSITIVE_SENTIMENT: Final = 0.5
"""At or above this compound, capitals and !!! read as enthusiasm and count half."""

PREVIOUS_TURN_WEIGHT: Final = 0.4
"""The markers of the previous user message count this much towards the newest one's score."""

# code, reason text, weight; the order is the order of the reasons.
_MARKER_CATEGORIES: Final = (
    ("insult", "insults the assistant", 0.7, INSULT),
    ("asks_for_human", "asks for a human agent", 0.6, ASKS_FOR_HUMAN),
    ("complaint", "complains about the previous answer", 0.55, COMPLAINT),
    ("confusion", "asks what the previous answer meant", 0.3, CONFUSION),
)
_SHOUTING_WEIGHT: Final = 0.3
_PUNCTUATION_WEIGHT: Final = 0.2
_SHOUTING_MIN_WORDS: Final = 2
_SHOUTING_MIN_SHARE: Final = 0.6

# Casefolding happens first; then apostrophe variants become ' and ё becomes е.
_FOLD: Final = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'", "ё": "е"})
_REPEATED_PUNCTUATION: Final = re.compile(r"[?!¿¡？！]{2,}")
# Words of three or more letters; shorter all-caps words (OK, AI, USA) are not shouting.
_WORD: Final = re.compile(r"[^\W\d_]{3,}")


def sentiment(text: str) -> float:
    """Return VADER's compound sentiment in [-1, 1] of the end of `text` (English only).

    Text VADER has no words for (most non-English text) scores 0.0.
    """
    return float(_vader().analyzer.polarity_scores(_tail(text))["compound"])


def _tail(text: str) -> str:
    """Return the last SENTIMENT_CHARS characters of `text`, without a cut-off first word."""
    if len(text) <= SENTIMENT_CHARS:
        return text
    tail = text[-SENTIMENT_CHARS:]
    if tail[0].isspace() or text[-SENTIMENT_CHARS - 1].isspace():
        return tail
    return tail.split(maxsplit=1)[-1]  # drop the word cut in half


def frustration(conversation: Conversation) -> SignalResult:
    """Score the newest user message's frustration in [0, 1], with a reason per piece of evidence.

    Evidence combines like independent probabilities (1 - Π(1 - w)), so each sign adds to the
    score without ever pushing it past 1. The previous user message's explicit markers
    (complaint, insult, ...) count at a lower weight; its tone does not carry over.
    """
    newest, previous = _last_two_user_turns(conversation.turns)
    if newest is None:
        return SignalResult(score=0.0)
    evidence = _evidence(newest.text[-MAX_CHARS:])
    if previous is not None:
        earlier = _marker_evidence(_fold(previous.text[-MAX_CHARS:]))
        if earlier:
            earlier_score = _combine(weight for _, weight in earlier)
            codes = ", ".join(reason.code for reason, _ in earlier)
            reason = Reason(
                code="earlier_frustration",
                text=f"the previous user message scored {earlier_score:.2f} ({codes})",
            )
            evidence.append((reason, PREVIOUS_TURN_WEIGHT * earlier_score))
    return SignalResult(
        score=_combine(weight for _, weight in evidence),
        reasons=tuple(reason for reason, _ in evidence),
    )


def _last_two_user_turns(turns: tuple[Turn, ...]) -> tuple[Turn | None, Turn | None]:
    """Return the newest user turn and the one before it, without scanning the whole history."""
    found: list[Turn] = []
    for turn in reversed(turns):
        if turn.role == "user":
            found.append(turn)
            if len(found) == 2:
                return found[0], found[1]
    return (found[0] if found else None), None


def _fold(text: str) -> str:
    """Normalise text for the marker tables: casefolded, one apostrophe, ё as е."""
    return text.casefold().translate(_FOLD)


def _evidence(text: str) -> list[tuple[Reason, float]]:
    """Return (reason, weight) for every frustration sign in one message."""
    found = _marker_evidence(_fold(text))
    shouting = _is_shouting(text)
    punctuation = _REPEATED_PUNCTUATION.search(text) is not None
    # VADER is the costly part: skip it when it cannot come out negative and no style sign
    # needs its positive reading.
    maybe_negative = _may_be_negative(_tail(text))
    compound = sentiment(text) if shouting or punctuation or maybe_negative else 0.0
    if compound <= NEGATIVE_SENTIMENT:
        reason = Reason(code="negative_sentiment", text=f"negative sentiment ({compound:.2f})")
        found.append((reason, SENTIMENT_WEIGHT * -compound))
    damping = 0.5 if compound >= POSITIVE_SENTIMENT else 1.0
    if shouting:
        reason = Reason(code="shouting", text="written mostly in capitals")
        found.append((reason, _SHOUTING_WEIGHT * damping))
    if punctuation:
        reason = Reason(code="repeated_punctuation", text="repeated ? or ! marks")
        found.append((reason, _PUNCTUATION_WEIGHT * damping))
    return found


def _marker_evidence(folded: str) -> list[tuple[Reason, float]]:
    """Return (reason, weight) for every marker category found in already-folded text."""
    if _ANY_MARKER.search(folded) is None:
        return []
    found: list[tuple[Reason, float]] = []
    for category in _CATEGORIES:
        match = category.pattern.search(folded)
        if match is not None:
            # A phrase can belong to several languages ("idiota" is es and pt); name them all.
            langs = ", ".join(lang for lang, p in category.languages if p.fullmatch(match.group()))
            reason = Reason(code=category.code, text=f"{category.description} ({langs})")
            found.append((reason, category.weight))
    return found


def _is_shouting(text: str) -> bool:
    """Tell whether most words of three or more letters are in capitals, and at least two are."""
    words = _WORD.findall(text)
    shouted = sum(1 for word in words if word.isupper())
    return shouted >= _SHOUTING_MIN_WORDS and shouted >= _SHOUTING_MIN_SHARE * len(words)


def _combine(weights: Iterable[float]) -> float:
    """Combine evidence weights in [0, 1] as independent probabilities of frustration."""
    calm = 1.0
    for weight in weights:
        calm *= 1.0 - weight
    return 1.0 - calm


# --- VADER, loaded once, with a cheap test for "cannot be negative" ------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Vader:
    """The analyzer plus the cues without which its compound cannot be negative."""

    analyzer: SentimentIntensityAnalyzer
    negative_cues: frozenset[str]
    emoji: frozenset[str]


@functools.cache
def _vader() -> _Vader:
    """Load VADER's lexicon once, on first use (about 30-50 ms)."""
    started = time.perf_counter()
    analyzer = SentimentIntensityAnalyzer()
    lexicon: Mapping[str, float] = analyzer.lexicon
    # A message only scores negative through a negative word, a negation ("not", "least", "no",
    # any "n't"), a dampener such as "barely", or an idiom such as "yeah right"; an idiom needs
    # all its words, so its longest word stands for it.
    cues = {word for word, valence in lexicon.items() if valence < 0}
    cues.update(NEGATE, ("no", "least"))
    for phrase, value in (*SPECIAL_CASES.items(), *BOOSTER_DICT.items()):
        if value < 0:
            cues.add(max(phrase.split(), key=len))
    # VADER replaces emoji by English descriptions, which may be negative.
    emoji = frozenset(e for e in analyzer.emojis if len(e) == 1)  # VADER checks char by char
    vader = _Vader(analyzer=analyzer, negative_cues=frozenset(cues), emoji=emoji)
    logger.debug("loaded VADER lexicon in %.1f ms", (time.perf_counter() - started) * 1e3)
    return vader


def _may_be_negative(text: str) -> bool:
    """Tell whether VADER could score `text` below zero (False means it certainly cannot)."""
    vader = _vader()
    cues = vader.negative_cues
    for token in text.lower().split():
        if token in cues or token.strip(string.punctuation) in cues or "n't" in token:
            return True
    return not vader.emoji.isdisjoint(text)


# --- marker tables compiled into fast regexes ----------------------------------------------
# One alternation over ~300 phrases is slow in `re`: it tries every phrase at every word
# start. Grouping phrases by their first letter (`t(?:hat's wrong|his is wrong)|...`) lets
# the engine reject a whole group with one character test: scans get 2-4x faster. Matching is
# case-insensitive because the text is casefolded first; re.IGNORECASE would defeat that test.

_LEADING_GROUP: Final = re.compile(r"\(\?:([^()]+)\)(\??)(?![*+{])")
_FIRST_ATOM: Final = re.compile(r"(?:\[[^\]]+\]|\w)(?![+*?{])")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Category:
    """One marker category: its reason, weight, a scanner, and a whole-match test per language."""

    code: str
    description: str
    weight: float
    pattern: re.Pattern[str]
    languages: tuple[tuple[str, re.Pattern[str]], ...]


def _alternatives(fragment: str) -> Iterator[str]:
    """Split a regex fragment at its top-level `|` (outside groups and [classes])."""
    depth, start, escaped, in_class = 0, 0, False, False
    for index, char in enumerate(fragment):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            yield fragment[start:index]
            start = index + 1
    yield fragment[start:]


def _phrases(fragments: Iterable[str]) -> Iterator[str]:
    """Yield phrases with no top-level `|` nor leading group: `(?:a |b )?c` → `a c`, `b c`, `c`."""
    pending = [alt for fragment in fragments for alt in _alternatives(fragment)]
    while pending:
        phrase = pending.pop()
        lead = _LEADING_GROUP.match(phrase)
        if lead is None:
            yield phrase
            continue
        heads = lead.group(1).split("|") + ([""] if lead.group(2) else [])
        pending.extend(head + phrase[lead.end() :] for head in heads)


def _scanner(fragments: Iterable[str]) -> re.Pattern[str]:
    """Compile fragments into one whole-word regex, grouped by their first letter."""
    by_first: dict[str, list[str]] = {}
    for phrase in _phrases(fragments):
        first = _FIRST_ATOM.match(phrase)
        if first is None:
            raise ValueError(f"marker phrase must start with a letter or [class]: {phrase!r}")
        by_first.setdefault(first.group(), []).append(phrase[first.end() :])
    groups = "|".join(f"{first}(?:{'|'.join(rests)})" for first, rests in by_first.items())
    return re.compile(rf"(?<!\w)(?:{groups})(?!\w)")


def _category(code: str, description: str, weight: float, table: MarkerTable) -> _Category:
    return _Category(
        code=code,
        description=description,
        weight=weight,
        pattern=_scanner(frag for fragments in table.values() for frag in fragments),
        languages=tuple((lang, _scanner(fragments)) for lang, fragments in table.items()),
    )


_CATEGORIES: Final = tuple(_category(*spec) for spec in _MARKER_CATEGORIES)
_ANY_MARKER: Final = _scanner(
    frag for *_, table in _MARKER_CATEGORIES for fragments in table.values() for frag in fragments
)
