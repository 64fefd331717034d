"""Request complexity: a logistic model on hashed word n-grams rating how hard a message is."""

from __future__ import annotations

import heapq
import json
import logging
import math
import re
import zlib
from bisect import bisect_right
from dataclasses import dataclass, field
from importlib import resources
from itertools import pairwise
from pathlib import Path

from routing.errors import RoutingError
from routing.types import Reason, SignalResult

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_RESOURCE = "complexity_model.json"
MAX_CHARS = 2000  # only the head of a message is examined, so a long paste costs a bounded time
TOP_CUES = 3  # features named in the reason

# Structural features: what a high and a low value is called in a reason, in model order.
STRUCTURE: tuple[tuple[str, str], ...] = (
    ("long prompt", "short message"),
    ("many lines", "single line"),
    ("many numbers", "few numbers"),
    ("code", "no code"),
    ("math notation", "no math notation"),
    ("several questions", "no question"),
    ("multiple-choice options", "no options"),
    ("operators", "no operators"),
    ("numbered steps", "no steps"),
)

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_OPTION = re.compile(r"(?m)^\s*\(?[a-e][).:]\s|\([a-e]\)")
_STEP = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s")
_CODE_MARKS = ("```", "def ", "return", "{", ";", "()")
_MATH_MARKS = ("$", "\\", "^")
_OPERATORS = ("=", "+", "*", "/", "<", ">")


@dataclass(frozen=True, slots=True, kw_only=True)
class Encoding:
    """A text as model inputs: its distinct word n-grams, their buckets, and structural values.

    Every gram has the value ``gram_value`` (one over the square root of the gram count), so a
    long text does not outweigh a short one; ``structure`` follows `STRUCTURE`.
    """

    grams: tuple[str, ...]
    buckets: tuple[int, ...]
    gram_value: float
    structure: tuple[float, ...]


def encode(text: str, dim: int) -> Encoding:
    """Encode the first `MAX_CHARS` characters of ``text`` (lower-cased) for ``dim`` buckets."""
    examined = text[:MAX_CHARS].lower()
    tokens: list[str] = _TOKEN.findall(examined)
    grams = tuple(dict.fromkeys([*tokens, *map(" ".join, pairwise(tokens))]))
    return Encoding(
        grams=grams,
        buckets=tuple(zlib.crc32(gram.encode()) % dim for gram in grams),
        gram_value=1 / math.sqrt(max(len(grams), 1)),
        structure=_structure(examined, len(text), tokens),
    )


def _structure(examined: str, length: int, tokens: list[str]) -> tuple[float, ...]:
    digits = sum(len(token) for token in tokens if token.isdigit())
    return (
        math.log1p(length) / 8,
        math.log1p(examined.count("\n")) / 4,
        5 * digits / max(len(examined), 1),
        math.log1p(sum(map(examined.count, _CODE_MARKS))) / 3,
        math.log1p(sum(map(examined.count, _MATH_MARKS))) / 3,
        math.log1p(examined.count("?")) / 2,
        math.log1p(len(_OPTION.findall(examined))) / 2,
        math.log1p(sum(map(examined.count, _OPERATORS))) / 4,
        math.log1p(len(_STEP.findall(examined))) / 3,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplexityModel:
    """The fitted weights; calling the model scores a text in [0, 1] (a `ComplexityScorer`).

    The raw logit is ``bias`` + the weights of the text's gram buckets times ``gram_value`` +
    the structure weights times the structural values minus their training means. ``knots`` are
    raw logits at evenly spaced quantiles of the training prompts, so the score is roughly the
    share of training prompts that look easier than the text.
    """

    bias: float
    weights: tuple[float, ...] = field(repr=False)
    structure_weights: tuple[float, ...]
    structure_means: tuple[float, ...]
    knots: tuple[float, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.weights or len(self.knots) < 2 or list(self.knots) != sorted(self.knots):
            raise ValueError("needs bucket weights and at least two ascending knots")
        if not len(self.structure_weights) == len(self.structure_means) == len(STRUCTURE):
            raise ValueError(f"needs {len(STRUCTURE)} structure weights and means")

    @classmethod
    def from_json(cls, text: str) -> ComplexityModel:
        """Parse a weight file; raise `RoutingError` if it is malformed or of another format."""
        try:
            data = json.loads(text)
            if data["format_version"] != FORMAT_VERSION:
                raise ValueError(f"format_version {data['format_version']!r} != {FORMAT_VERSION}")
            return cls(
                bias=float(data["bias"]),
                weights=_floats(data["weights"]),
                structure_weights=_floats(data["structure_weights"]),
                structure_means=_floats(data["structure_means"]),
                knots=_floats(data["knots"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise RoutingError(f"unusable complexity model: {exc!r}") from exc

    def __call__(self, text: str, /) -> SignalResult:
        """Score ``text``: higher means the cheap model is more likely to fall short."""
        enc = encode(text, len(self.weights))
        weights, value = self.weights, enc.gram_value
        cues = [
            (weights[b] * value, gram, True) for gram, b in zip(enc.grams, enc.buckets, strict=True)
        ]
        cues += [
            (weight * (x - mean), high if x > mean else low, False)
            for (high, low), weight, x, mean in zip(
                STRUCTURE, self.structure_weights, enc.structure, self.structure_means, strict=True
            )
        ]
        score = _calibrate(self.bias + sum(c for c, _, _ in cues), self.knots)
        return SignalResult(score=score, reasons=(_reason(score, cues),))


def load_complexity_model(path: Path | None = None) -> ComplexityModel:
    """Load the weights at ``path``, by default the file shipped beside this module."""
    try:
        if path is None:
            text = resources.files("routing.signals").joinpath(MODEL_RESOURCE).read_text("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutingError(f"cannot read complexity model {path or MODEL_RESOURCE}: {exc}") from exc
    model = ComplexityModel.from_json(text)
    logger.debug(
        "complexity model loaded buckets=%d knots=%d", len(model.weights), len(model.knots)
    )
    return model


def _floats(value: object) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of numbers, got {type(value).__name__}")
    return tuple(float(x) for x in value)


def _calibrate(raw: float, knots: tuple[float, ...]) -> float:
    """Map a raw logit to [0, 1] piecewise-linearly through the knots, with tanh tails."""
    n = len(knots)
    edge = 0.5 / n  # the score at the first knot; 1 - edge at the last
    tail = (knots[-1] - knots[0]) / 8 or 1.0
    i = bisect_right(knots, raw)
    if i == 0:
        return edge * (1 + math.tanh((raw - knots[0]) / tail))
    if i == n:
        return 1 - edge * (1 - math.tanh((raw - knots[-1]) / tail))
    low, high = knots[i - 1], knots[i]
    return (i - 0.5 + (raw - low) / (high - low)) / n


def _reason(score: float, cues: list[tuple[float, str, bool]]) -> Reason:
    """Name the features that pushed the score furthest toward where it ended up."""
    sign = 1.0 if score >= 0.5 else -1.0
    ranked = heapq.nlargest(TOP_CUES, cues, key=lambda cue: sign * cue[0])
    names = [f'"{name}"' if quoted else name for c, name, quoted in ranked if sign * c > 0]
    detail = f"{'raised' if sign > 0 else 'lowered'} by {', '.join(names)}" if names else "no cues"
    return Reason(code="complexity", text=f"difficulty {score:.2f} ({detail})")
