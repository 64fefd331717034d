"""Loading of routing evaluation inputs: per-prompt model outcomes (JSONL) and model prices."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from routing.errors import EvaluationError

DEFAULT_CHEAP = "llama-3.1-8b-instruct"
DEFAULT_STRONG = "llama-3.1-nemotron-51b-instruct"
DEFAULT_SPLIT = "test"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One prompt with the scores in [0, 1] that the cheap and the strong model earned on it."""

    line: int
    prompt: str
    cheap_score: float
    strong_score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcomes:
    """The rows selected for evaluation, and one message per line skipped as invalid."""

    cheap: str
    strong: str
    split: str | None
    rows: tuple[Outcome, ...]
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPrice:
    """A model's list prices in USD per million input and output tokens."""

    input_price: float
    output_price: float

    @property
    def blended(self) -> float:
        """USD per million tokens for a call that reads as many tokens as it writes."""
        return (self.input_price + self.output_price) / 2


def load_outcomes(
    path: Path,
    *,
    cheap: str = DEFAULT_CHEAP,
    strong: str = DEFAULT_STRONG,
    split: str | None = DEFAULT_SPLIT,
    skip_invalid: bool = False,
) -> Outcomes:
    """Read a JSONL outcomes file, keeping rows of ``split`` (all rows when None).

    A malformed line, or a selected row without a valid score for either model, raises
    `EvaluationError` naming the line, unless ``skip_invalid`` is set; then it is skipped and
    listed in `Outcomes.skipped`. Rows of other splits are not checked for the two models.
    """
    rows: list[Outcome] = []
    skipped: list[str] = []
    for line, text in enumerate(_read_text(path, "outcomes file").split("\n"), start=1):
        if not text.strip():
            continue
        try:
            row = _parse_row(text, line=line, cheap=cheap, strong=strong, split=split)
        except EvaluationError as exc:
            if not skip_invalid:
                raise EvaluationError(f"{path}:{line}: {exc}") from None
            skipped.append(f"{path}:{line}: {exc}")
            continue
        if row is not None:
            rows.append(row)
    return Outcomes(
        cheap=cheap, strong=strong, split=split, rows=tuple(rows), skipped=tuple(skipped)
    )


def load_prices(path: Path) -> dict[str, ModelPrice]:
    """Read a models.json price list: ``{model: {"input_price": x, "output_price": y, ...}}``."""
    try:
        data = json.loads(_read_text(path, "price list"))
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{path}: expected a JSON object mapping model names to prices")
    return {str(name): _parse_price(path, str(name), entry) for name, entry in data.items()}


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read {what} {path}: {exc}") from exc


def _parse_row(
    text: str, *, line: int, cheap: str, strong: str, split: str | None
) -> Outcome | None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise EvaluationError("expected a JSON object")
    if split is not None and obj.get("split") != split:
        return None
    prompt, scores = obj.get("prompt"), obj.get("scores")
    if not isinstance(prompt, str):
        raise EvaluationError('"prompt" must be a string')
    if not isinstance(scores, dict):
        raise EvaluationError('"scores" must be an object mapping model names to scores')
    return Outcome(
        line=line,
        prompt=prompt,
        cheap_score=_model_score(scores, cheap),
        strong_score=_model_score(scores, strong),
    )


def _model_score(scores: dict[str, object], model: str) -> float:
    if model not in scores:
        raise EvaluationError(f"no score for model {model!r}")
    score = _number(scores[model], high=1.0)
    if score is None:
        raise EvaluationError(
            f"score for model {model!r} must be a number in [0, 1], got {scores[model]!r}"
        )
    return score


def _parse_price(path: Path, name: str, entry: object) -> ModelPrice:
    if isinstance(entry, dict):
        input_price = _number(entry.get("input_price"), high=sys.float_info.max)
        output_price = _number(entry.get("output_price"), high=sys.float_info.max)
        if input_price is not None and output_price is not None:
            return ModelPrice(input_price=input_price, output_price=output_price)
    raise EvaluationError(f"{path}: model {name!r} needs numeric input_price and output_price >= 0")


def _number(value: object, *, high: float) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean) in [0, high], else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
        return None
    return float(value)
