"""Offline trainer of the complexity model: numpy gradient descent on a routing outcomes file.

Run: ``python3 -m uv run python -m routing.signals.complexity_train --data FILE --out FILE``.

The model is a logistic regression on hashed word uni/bi-grams plus `STRUCTURE` features, fitted
by full-batch Adam (deterministic: fixed seed, no sampling). The target is the soft label
``(strong - cheap + 1) / 2`` ("gap"), whose fitted logit ranks prompts by the expected quality
gain of the strong model; the plain "strong beats cheap" label ("wins") and the L2 strength are
chosen on a validation slice of the train split (5-fold cross-validation while designing gave
APGR 0.75 for "gap" against 0.65 for "wins"). A few hand-written chat messages join the training
rows with target 0, so greetings and small talk score low. Only the test split is reported on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

from routing.evaluation import evaluate
from routing.evaluation_data import DEFAULT_CHEAP, DEFAULT_STRONG, Outcome, Outcomes, load_outcomes
from routing.signals.complexity import FORMAT_VERSION, ComplexityModel, encode

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]
Label = Literal["gap", "wins"]

DIM = 2**14  # hash buckets
SEED = 0
VALIDATION_SHARE = 0.2
ITERATIONS = 300
STEP = 0.05  # Adam learning rate
KNOTS = 100  # calibration quantiles
DECIMALS = 4  # weights are rounded to this many decimals in the file
GRID: tuple[tuple[Label, float], ...] = tuple(
    (label, l2) for label in ("gap", "wins") for l2 in (1e-4, 1e-3, 1e-2)
)
STRONG_MODELS = (DEFAULT_STRONG, "llama-3.3-nemotron-super-49b-v1", "llama3-chatqa-1.5-70b")
CHAT_TARGET = 0.0
EASY_CHAT = (
    "hi", "hello", "hey there!", "hi :)", "good morning", "good night", "yo", "hello, how are you?",
    "how's it going?", "thanks!", "thank you so much", "thx", "ok", "okay cool", "great, thanks",
    "sounds good", "no worries", "lol", "nice!", "bye", "see you later", "what's the weather like",
    "what's the weather like today?", "is it going to rain tomorrow?", "what time is it?",
    "what day is it today?", "tell me a joke", "who are you?", "what's your name?",
    "are you a bot?", "can you help me?", "i need some help", "recommend a movie for tonight",
    "what should i eat for dinner?", "i'm bored", "how was your day?", "good job", "that's funny",
    "yes please", "no thanks", "sure", "cool", "got it", "happy birthday!", "what's up?",
)  # fmt: skip

_LABELS: dict[Label, Callable[[Array], Array]] = {
    "gap": lambda gap: (gap + 1) / 2,
    "wins": lambda gap: (gap > 0).astype(np.float64),
}


class Meta(TypedDict):
    """Provenance of a weight file: data fingerprint, choices and the figures it reached."""

    data_sha256: str
    rows: dict[str, int]
    cheap: str
    strong: str
    label: Label
    l2: float
    dim: int
    seed: int
    validation_apgr: dict[str, float | None]
    test_apgr: dict[str, float | None]


class WeightFile(TypedDict, total=False):
    """The JSON weight file that `ComplexityModel.from_json` reads."""

    format_version: int
    meta: Meta
    bias: float
    structure_weights: list[float]
    structure_means: list[float]
    knots: list[float]
    weights: list[float]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Design:
    """Sparse gram features (one entry per row and gram) and dense structural features."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    values: Array
    structure: Array
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _Params:
    """Bucket weights, structure weights and bias in one vector, plus the structure means."""

    theta: Array
    means: Array


@dataclass(frozen=True, slots=True, kw_only=True)
class Trained:
    """A training run's weight file (as JSON text) and what it reached."""

    weight_file: str
    meta: Meta
    notes: dict[str, str]
    seconds: float


def _design(texts: Sequence[str]) -> _Design:
    encodings = [encode(text, DIM) for text in texts]
    counts = [len(e.buckets) for e in encodings]
    return _Design(
        rows=np.repeat(np.arange(len(texts)), counts),
        cols=np.array([b for e in encodings for b in e.buckets], dtype=np.intp),
        values=np.repeat([e.gram_value for e in encodings], counts),
        structure=np.array([e.structure for e in encodings], dtype=np.float64),
        n=len(texts),
    )


def _logits(d: _Design, p: _Params) -> Array:
    grams = np.bincount(d.rows, weights=d.values * p.theta[d.cols], minlength=d.n)
    result: Array = grams + (d.structure - p.means) @ p.theta[DIM:-1] + p.theta[-1]
    return result


def _fit(d: _Design, targets: Array, l2: float) -> _Params:
    """Minimise mean cross-entropy + l2/2 |weights|^2 with full-batch Adam."""
    p = _Params(theta=np.zeros(DIM + d.structure.shape[1] + 1), means=d.structure.mean(axis=0))
    first, second = np.zeros_like(p.theta), np.zeros_like(p.theta)
    centred = d.structure - p.means
    for t in range(1, ITERATIONS + 1):
        residual = (1 / (1 + np.exp(-_logits(d, p))) - targets) / d.n
        grams = np.bincount(d.cols, weights=d.values * residual[d.rows], minlength=DIM)
        grad = np.concatenate([grams, centred.T @ residual, [residual.sum()]])
        grad[:-1] += l2 * p.theta[:-1]
        first = 0.9 * first + 0.1 * grad
        second = 0.999 * second + 0.001 * grad**2
        step = (first / (1 - 0.9**t)) / (np.sqrt(second / (1 - 0.999**t)) + 1e-8)
        p.theta[:] -= STEP * step
    return p


def _targets(rows: Sequence[Outcome], label: Label) -> Array:
    gap = np.array([r.strong_score - r.cheap_score for r in rows], dtype=np.float64)
    return np.concatenate([_LABELS[label](gap), np.full(len(EASY_CHAT), CHAT_TARGET)])


def _rounded(apgr: float | None) -> float | None:
    """APGR rounded for the weight file's metadata (None where PGR is undefined)."""
    return None if apgr is None else round(apgr, 4)


def _validate(train: Outcomes) -> dict[str, float | None]:
    """APGR on a seeded validation slice of ``train`` for each (label, L2) of `GRID`."""
    order = np.random.default_rng(SEED).permutation(len(train.rows))
    cut = int(len(order) * VALIDATION_SHARE)
    held = Outcomes(
        cheap=train.cheap,
        strong=train.strong,
        split="validation",
        rows=tuple(train.rows[i] for i in order[:cut]),
    )
    fit_rows = [train.rows[i] for i in order[cut:]]
    design = _design([r.prompt for r in fit_rows] + list(EASY_CHAT))
    held_design = _design([r.prompt for r in held.rows])
    results: dict[str, float | None] = {}
    for label, l2 in GRID:
        logits = _logits(held_design, _fit(design, _targets(fit_rows, label), l2))
        by_prompt = dict(zip((r.prompt for r in held.rows), logits.tolist(), strict=True))
        results[_key(label, l2)] = _rounded(evaluate(held, by_prompt.__getitem__).apgr)
        logger.debug("validation %s apgr=%s", _key(label, l2), results[_key(label, l2)])
    return results


def _weight_file(p: _Params, train_logits: Array) -> WeightFile:
    knots = np.quantile(train_logits, (np.arange(KNOTS) + 0.5) / KNOTS)
    return WeightFile(
        format_version=FORMAT_VERSION,
        bias=round(float(p.theta[-1]), DECIMALS),
        structure_weights=[round(x, DECIMALS) for x in p.theta[DIM:-1].tolist()],
        structure_means=[round(x, DECIMALS) for x in p.means.tolist()],
        knots=[round(x, DECIMALS + 1) for x in knots.tolist()],
        weights=[round(x, DECIMALS) for x in p.theta[:DIM].tolist()],
    )


def train(data: Path) -> Trained:
    """Choose the label and L2 on validation, refit on the whole train split, test the result."""
    start = time.perf_counter()
    train_set = load_outcomes(data, split="train")
    tests = {m: load_outcomes(data, strong=m, split="test") for m in STRONG_MODELS}
    validation = _validate(train_set)
    label, l2 = GRID[max(range(len(GRID)), key=lambda i: validation[_key(*GRID[i])] or -1.0)]
    design = _design([r.prompt for r in train_set.rows] + list(EASY_CHAT))
    params = _fit(design, _targets(train_set.rows, label), l2)
    weights = _weight_file(params, _logits(design, params)[: len(train_set.rows)])
    model = ComplexityModel.from_json(json.dumps(weights))
    reports = {
        m: evaluate(outcomes, lambda text: model(text).score) for m, outcomes in tests.items()
    }
    meta = Meta(
        data_sha256=hashlib.sha256(data.read_bytes()).hexdigest(),
        rows={
            "train": len(train_set.rows),
            "test": len(tests[DEFAULT_STRONG].rows),
            "chat": len(EASY_CHAT),
        },
        cheap=DEFAULT_CHEAP,
        strong=DEFAULT_STRONG,
        label=label,
        l2=l2,
        dim=DIM,
        seed=SEED,
        validation_apgr=validation,
        test_apgr={m: _rounded(r.apgr) for m, r in reports.items()},
    )
    weight_file = WeightFile(format_version=FORMAT_VERSION, meta=meta)  # provenance first
    weight_file.update(weights)
    return Trained(
        weight_file=json.dumps(weight_file, separators=(",", ":")),
        meta=meta,
        notes={m: r.note for m, r in reports.items() if r.note},
        seconds=time.perf_counter() - start,
    )


def _key(label: Label, l2: float) -> str:
    return f"{label} l2={l2:g}"


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _summary(trained: Trained, out: Path) -> str:
    meta = trained.meta
    lines = [f"validation APGR ({VALIDATION_SHARE:.0%} of train, cheap={meta['cheap']}):"]
    lines += [f"  {key}: {_fmt(value)}" for key, value in meta["validation_apgr"].items()]
    lines.append(f"chosen: {_key(meta['label'], meta['l2'])}")
    lines.append(f"test APGR (n={meta['rows']['test']}), cheap={meta['cheap']}:")
    for model, value in meta["test_apgr"].items():
        note = trained.notes.get(model)
        lines.append(f"  strong={model}: {_fmt(value)}" + (f"  [{note}]" if note else ""))
    size = len(trained.weight_file.encode()) / 1024
    lines.append(f"trained in {trained.seconds:.1f} s; wrote {out} ({size:.0f} KiB)")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Train on ``--data`` and write the weight file to ``--out``; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="outcomes JSONL with splits")
    parser.add_argument("--out", type=Path, required=True, help="weight file to write")
    args = parser.parse_args(argv)
    trained = train(args.data)
    args.out.write_text(trained.weight_file + "\n", encoding="utf-8")
    sys.stdout.write(_summary(trained, args.out))
    return 0


if __name__ == "__main__":  # pragma: no cover - the module's command-line entry
    raise SystemExit(main())
