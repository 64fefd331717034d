"""Offline evaluation of a cheap/strong routing scorer with RouteLLM's PGR, APGR and CPT metrics."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

from routing.errors import EvaluationError
from routing.evaluation_data import ModelPrice, Outcome, Outcomes

TABLE_SHARES: tuple[float, ...] = tuple(i / 10 for i in range(11))
RANDOM_APGR = 0.5  # random routing: expected quality is linear in the share of strong calls

Scorer = Callable[[str], float]
Progress = Callable[[int], object]

_EPS = 1e-9  # tolerance for comparing shares and PGR values built from float sums


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatingPoint:
    """What one threshold does; ``threshold`` None sends nothing to the strong model.

    ``cost`` is the blended USD price per million tokens (equal token counts assumed for every
    prompt and for input and output); it is None when no prices were given, in which case
    ``strong_share`` is the cost measure.
    """

    threshold: float | None
    strong_share: float
    quality: float
    pgr: float | None
    cost: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRow:
    """The highest threshold that sends at least ``target_share`` of the calls to strong."""

    target_share: float
    point: OperatingPoint


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationReport:
    """Quality, PGR and cost over the threshold sweep, with APGR, CPT and the baselines."""

    cheap: str
    strong: str
    split: str | None
    n: int
    skipped: int
    quality_cheap: float
    quality_strong: float
    cost_cheap: float | None
    cost_strong: float | None
    apgr: float | None
    random_apgr: float
    cpt_50: OperatingPoint | None
    cpt_80: OperatingPoint | None
    note: str | None
    rows: tuple[TableRow, ...]
    curve: tuple[OperatingPoint, ...]


def evaluate(
    outcomes: Outcomes,
    scorer: Scorer,
    *,
    prices: Mapping[str, ModelPrice] | None = None,
    shares: Sequence[float] = TABLE_SHARES,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Score every prompt, sweep the threshold and compute PGR, APGR and CPT(50%/80%).

    Metrics follow Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference Data".
    The policy sends a prompt to the strong model when ``score >= threshold``, so prompts with
    equal scores move together: every reported point is reachable by a real threshold, and the
    result does not depend on the order of the rows.

    ``progress`` is called with 1 after each prompt is scored (a tqdm bar's ``update`` fits).
    ``shares`` are the fractions of strong calls for which `EvaluationReport.rows` gives the
    threshold to set.
    """
    if not outcomes.rows:
        where = "" if outcomes.split is None else f" in split {outcomes.split!r}"
        raise EvaluationError(f"nothing to evaluate: no valid rows{where}")
    if any(not 0 <= share <= 1 for share in shares):
        raise EvaluationError(f"table shares must lie in [0, 1], got {list(shares)}")
    costs = _model_costs(prices, outcomes.cheap, outcomes.strong)
    scores = _score_all(outcomes.rows, scorer, progress)
    curve = _sweep(outcomes.rows, scores, costs)
    quality_cheap, quality_strong = curve[0].quality, curve[-1].quality
    return EvaluationReport(
        cheap=outcomes.cheap,
        strong=outcomes.strong,
        split=outcomes.split,
        n=len(outcomes.rows),
        skipped=len(outcomes.skipped),
        quality_cheap=quality_cheap,
        quality_strong=quality_strong,
        cost_cheap=curve[0].cost,
        cost_strong=curve[-1].cost,
        apgr=_apgr(curve),
        random_apgr=RANDOM_APGR,
        cpt_50=_cpt(curve, 0.5),
        cpt_80=_cpt(curve, 0.8),
        note=_note(outcomes, quality_cheap, quality_strong, defined=curve[0].pgr is not None),
        rows=tuple(TableRow(target_share=s, point=_point_at(curve, s)) for s in shares),
        curve=curve,
    )


def _model_costs(
    prices: Mapping[str, ModelPrice] | None, cheap: str, strong: str
) -> tuple[float, float] | None:
    if prices is None:
        return None
    missing = [model for model in (cheap, strong) if model not in prices]
    if missing:
        raise EvaluationError(f"no price for model(s) {', '.join(map(repr, missing))}")
    return prices[cheap].blended, prices[strong].blended


def _score_all(rows: Sequence[Outcome], scorer: Scorer, progress: Progress | None) -> list[float]:
    scores: list[float] = []
    for row in rows:
        value = scorer(row.prompt)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise EvaluationError(
                f"scorer returned {value!r} for the prompt on line {row.line}; "
                "expected a finite number"
            )
        scores.append(float(value))
        if progress is not None:
            progress(1)
    return scores


def _sweep(
    rows: Sequence[Outcome], scores: Sequence[float], costs: tuple[float, float] | None
) -> tuple[OperatingPoint, ...]:
    """Every reachable operating point, from all-cheap to all-strong, one per distinct score."""
    n = len(rows)
    gains = (row.strong_score - row.cheap_score for row in rows)
    ranked = sorted(zip(scores, gains, strict=True), key=lambda pair: pair[0], reverse=True)
    steps: list[tuple[float | None, int, float]] = [(None, 0, 0.0)]
    sent, gained = 0, 0.0
    for threshold, group in groupby(ranked, key=lambda pair: pair[0]):
        group_gains = [gain for _, gain in group]
        sent += len(group_gains)
        gained += math.fsum(group_gains)
        steps.append((threshold, sent, gained))
    quality_cheap = math.fsum(row.cheap_score for row in rows) / n
    # PGR = (quality - quality_cheap) / (quality_strong - quality_cheap) = gain / total gain,
    # undefined when the two models' mean scores are (numerically) equal.
    defined = abs(gained) / n > _EPS
    return tuple(
        OperatingPoint(
            threshold=threshold,
            strong_share=k / n,
            quality=quality_cheap + gain / n,
            pgr=gain / gained if defined else None,
            cost=None if costs is None else (1 - k / n) * costs[0] + k / n * costs[1],
        )
        for threshold, k, gain in steps
    )


def _apgr(curve: Sequence[OperatingPoint]) -> float | None:
    """Area under PGR against the share of strong calls, by the trapezoid rule."""
    points = [(p.strong_share, p.pgr) for p in curve if p.pgr is not None]
    if len(points) != len(curve):
        return None
    return math.fsum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairwise(points))


def _cpt(curve: Sequence[OperatingPoint], target: float) -> OperatingPoint | None:
    """The point with the fewest strong calls whose PGR reaches ``target`` (PGR is 1 at 100%)."""
    return next((p for p in curve if p.pgr is not None and p.pgr >= target - _EPS), None)


def _point_at(curve: Sequence[OperatingPoint], share: float) -> OperatingPoint:
    """The first point sending at least ``share`` of the calls to the strong model."""
    return curve[bisect_left([p.strong_share for p in curve], share - _EPS)]


def _note(
    outcomes: Outcomes, quality_cheap: float, quality_strong: float, *, defined: bool
) -> str | None:
    qualities = f"{outcomes.cheap} {quality_cheap:.4f}, {outcomes.strong} {quality_strong:.4f}"
    if not defined:
        return (
            f"PGR, APGR and CPT are undefined: both models have the same mean score ({qualities}),"
            " so there is no gap to recover"
        )
    if quality_strong < quality_cheap:
        return f"the strong model scores lower than the cheap one ({qualities}); PGR is inverted"
    return None
