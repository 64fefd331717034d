"""Evaluation: APGR of the shipped complexity score on the shared test split, and its latency.

Run on demand: `python3 -m uv run python -m tests.bench.eval_complexity [--data FILE]`. Prints
the APGR for the reported pair (cheap llama-3.1-8b-instruct, strong llama-3.1-nemotron-51b-
instruct), a matrix over the other small and large models, the validation figures stored in the
weight file, and p50/p99 scoring times for a chat message and a 5,000-character prompt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from routing.evaluation import evaluate
from routing.evaluation_data import DEFAULT_CHEAP, DEFAULT_STRONG, load_outcomes
from routing.signals.complexity import MODEL_RESOURCE, ComplexityModel, load_complexity_model
from routing.signals.complexity_train import STRONG_MODELS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
SMALL_MODELS = (
    DEFAULT_CHEAP,
    "qwen2.5-7b-instruct",
    "gemma-2-9b-it",
    "mistral-7b-instruct-v0.3",
    "llama3-chatqa-1.5-8b",
    "codegemma-7b",
)
SHORT = "Hey, can you tell me what the weather will be like in Paris tomorrow?"
RUNS = 2000


def _apgr(model: ComplexityModel, data: Path, cheap: str, strong: str) -> str:
    report = evaluate(
        load_outcomes(data, cheap=cheap, strong=strong), lambda text: model(text).score
    )
    inverted = " (strong mean below cheap: PGR inverted)" if report.note else ""
    value = "undefined" if report.apgr is None else f"{report.apgr:.4f}"
    return f"{value}{inverted}"


def _timing(model: ComplexityModel, text: str) -> str:
    times: list[float] = []
    for _ in range(RUNS):
        start = time.perf_counter()
        model(text)
        times.append(time.perf_counter() - start)
    cuts = statistics.quantiles(times, n=100)
    return f"p50 {cuts[49] * 1e6:.1f} us, p99 {cuts[98] * 1e6:.1f} us"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the test-split APGR figures, the stored validation APGR and the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=SHARED / "open-model-outcomes.jsonl")
    args = parser.parse_args(argv)
    model = load_complexity_model()
    meta = json.loads(resources.files("routing.signals").joinpath(MODEL_RESOURCE).read_text())
    out = sys.stdout
    pair = _apgr(model, args.data, DEFAULT_CHEAP, DEFAULT_STRONG)
    out.write(f"test APGR {DEFAULT_CHEAP} -> {DEFAULT_STRONG}: {pair} (random 0.5)\n")
    for key, value in meta["meta"]["validation_apgr"].items():
        out.write(f"validation APGR (stored, 20% of train) {key}: {value}\n")
    out.write("test APGR matrix (rows cheap, columns strong):\n")
    for cheap in SMALL_MODELS:
        cells = [f"{strong}={_apgr(model, args.data, cheap, strong)}" for strong in STRONG_MODELS]
        out.write(f"  {cheap}: {'; '.join(cells)}\n")
    longest = max((row.prompt for row in load_outcomes(args.data).rows), key=len)
    long_text = (longest * (5000 // len(longest) + 1))[:5000]
    out.write(f"timing, {len(SHORT)}-char message: {_timing(model, SHORT)}\n")
    out.write(f"timing, {len(long_text)}-char prompt: {_timing(model, long_text)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
