"""Tests of the complexity score: the shipped model, its calibration and reasons, and training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing.errors import RoutingError
from routing.signals.complexity import (
    MAX_CHARS,
    STRUCTURE,
    ComplexityModel,
    encode,
    load_complexity_model,
)
from routing.signals.complexity_train import EASY_CHAT, main

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "routing"
DATA = SHARED / "open-model-outcomes.jsonl"

# Partly held out: "Hello!", "good evening!", "How are you today?", "hey, what's new?" are not
# among the hand-written training messages.
GREETINGS = ["hi", "Hello!", "good evening!", "How are you today?", "hey, what's new?", "thanks!"]
HARD = [
    "Write a python function that parses a CSV file, groups rows by the 'region' column and "
    "returns the top 3 regions by total revenue. Handle missing values, then write unit tests.\n"
    "```python\ndef top_regions(path: str) -> list[str]:\n    ...\n```",
    "Q: There are 4 houses in a row, numbered 1 to 4. Each person has a different pet and car.\n"
    "Clue(s):\n1. The cat owner lives directly left of the truck driver.\n"
    "2. There is one house between the dog owner and the sedan owner.\n"
    "3. The person in house 2 does not own a bird.\n"
    "What is the number of the house where the person who owns the truck lives?",
]
LONG = "Consider the following multi-step problem and reason carefully. " * 200


GOOD = {
    "format_version": 1,
    "bias": 0.0,
    "weights": [0.0],
    "structure_weights": [0.0] * len(STRUCTURE),
    "structure_means": [0.0] * len(STRUCTURE),
    "knots": [0.0, 1.0],
}


@pytest.fixture(scope="module")
def model() -> ComplexityModel:
    return load_complexity_model()


def flat_model(
    *, bias: float, weights: int = 8, knots: tuple[float, ...] = (-1.0, 1.0)
) -> ComplexityModel:
    """A model whose raw logit is ``bias`` for every text."""
    return ComplexityModel(
        bias=bias,
        weights=(0.0,) * weights,
        structure_weights=(0.0,) * len(STRUCTURE),
        structure_means=(0.0,) * len(STRUCTURE),
        knots=knots,
    )


# --- the shipped model ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "hi", "é ü 中文 🙂", *HARD, LONG, "1" * 10_000])
def test_score_lies_in_the_unit_interval(model: ComplexityModel, text: str) -> None:
    assert 0 <= model(text).score <= 1


def test_chat_greetings_score_low(model: ComplexityModel) -> None:
    assert [t for t in GREETINGS if model(t).score >= 0.1] == []


def test_multi_step_code_and_puzzle_prompts_score_above_every_greeting(
    model: ComplexityModel,
) -> None:
    easiest_hard = min(model(t).score for t in HARD)
    assert easiest_hard > 0.5
    assert easiest_hard > max(model(t).score for t in GREETINGS) + 0.4


def test_scores_are_deterministic_across_loads(model: ComplexityModel) -> None:
    again = load_complexity_model()
    assert [again(t) for t in [*GREETINGS, *HARD]] == [model(t) for t in [*GREETINGS, *HARD]]


def test_only_the_head_of_a_long_text_is_examined() -> None:
    head = "word " * (MAX_CHARS // 5)
    assert encode(head + "tail " * 100, 64).grams == encode(head, 64).grams


def test_a_low_score_names_what_lowered_it(model: ComplexityModel) -> None:
    result = model("hi")
    assert [r.code for r in result.reasons] == ["complexity"]
    assert result.reasons[0].text == 'difficulty 0.00 (lowered by short message, "hi", no question)'


def test_a_high_score_names_what_raised_it(model: ComplexityModel) -> None:
    result = model(HARD[1])
    assert [r.code for r in result.reasons] == ["complexity"]
    assert result.reasons[0].text.startswith(f"difficulty {result.score:.2f} (raised by ")


def test_the_shipped_file_records_its_data_and_test_apgr() -> None:
    shipped = Path(__file__).resolve().parents[3] / "routing" / "signals" / "complexity_model.json"
    meta = json.loads(shipped.read_text(encoding="utf-8"))["meta"]
    assert meta["rows"] == {"train": 5387, "test": 356, "chat": len(EASY_CHAT)}
    assert meta["test_apgr"]["llama-3.1-nemotron-51b-instruct"] >= 0.6


# --- calibration, reasons and loading, on hand-built models ---------------------------------


@pytest.mark.parametrize(
    ("bias", "expected"),
    [(0.0, 0.5), (-1.0, 0.25), (1.0, 0.75), (-1e6, 0.0), (1e6, 1.0)],
)
def test_calibration_maps_knots_to_quantiles_and_tails_to_the_ends(
    bias: float, expected: float
) -> None:
    assert flat_model(bias=bias)("anything").score == pytest.approx(expected)


def test_calibration_tails_keep_the_order() -> None:
    scores = [flat_model(bias=b)("x").score for b in (-3.0, -2.0, 2.0, 3.0)]
    assert scores == sorted(scores)
    assert 0 < scores[0] < scores[1] < 0.25
    assert 0.75 < scores[2] < scores[3] < 1


def test_a_score_without_contributions_has_no_cues() -> None:
    assert flat_model(bias=0.0)("x").reasons[0].text == "difficulty 0.50 (no cues)"


def test_load_reads_an_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_complexity_model(path) == flat_model(bias=0.0, weights=1, knots=(0.0, 1.0))


def test_load_of_a_missing_file_is_a_routing_error(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="cannot read complexity model"):
        load_complexity_model(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "change",
    [
        {"format_version": 2},
        {"weights": "0.0"},
        {"weights": []},
        {"knots": [1.0, 0.0]},
        {"knots": [0.0]},
        {"structure_means": [0.0]},
        {"bias": None},
    ],
)
def test_a_malformed_weight_file_is_a_routing_error(change: dict[str, object]) -> None:
    with pytest.raises(RoutingError, match="unusable complexity model"):
        ComplexityModel.from_json(json.dumps(GOOD | change))


@pytest.mark.parametrize("text", ["not json", "[]", "{}"])
def test_a_weight_file_that_is_not_a_model_is_a_routing_error(text: str) -> None:
    with pytest.raises(RoutingError, match="unusable complexity model"):
        ComplexityModel.from_json(text)


# --- training ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 train and 80 test rows of the shared outcomes file."""
    if not DATA.exists():
        pytest.fail(f"{DATA} is missing: the shared routing data set must be present")
    lines = DATA.read_text(encoding="utf-8").rstrip("\n").split("\n")  # not splitlines: U+2028
    train = [line for line in lines if json.loads(line)["split"] == "train"][:400]
    test = [line for line in lines if json.loads(line)["split"] == "test"][:80]
    path = tmp_path_factory.mktemp("data") / "slice.jsonl"
    path.write_text("\n".join(train + test) + "\n", encoding="utf-8")
    return path


def test_training_on_a_slice_writes_a_loadable_deterministic_model(
    data_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"

    assert main(["--data", str(data_slice), "--out", str(first)]) == 0
    assert main(["--data", str(data_slice), "--out", str(second)]) == 0

    assert first.read_bytes() == second.read_bytes()
    meta = json.loads(first.read_text(encoding="utf-8"))["meta"]
    assert meta["rows"] == {"train": 400, "test": 80, "chat": len(EASY_CHAT)}
    assert len(meta["validation_apgr"]) == 6
    trained = load_complexity_model(first)
    assert trained("hi").score < trained(HARD[1]).score
    out = capsys.readouterr().out
    assert "chosen: " in out
    assert f"wrote {first}" in out
