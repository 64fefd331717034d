"""Tests of routing evaluation: loading, the threshold sweep, RouteLLM metrics and renderings."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from routing.errors import EvaluationError, RoutingError
from routing.evaluation import EvaluationReport, OperatingPoint, Scorer, TableRow, evaluate
from routing.evaluation_data import (
    DEFAULT_CHEAP,
    DEFAULT_STRONG,
    ModelPrice,
    Outcome,
    Outcomes,
    load_outcomes,
    load_prices,
)
from routing.evaluation_report import PLOT_HINT, format_table, report_to_json, save_plot

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Four prompts; the strong model gains 1 on "a" and "b" and nothing on "c" and "d".
# quality_cheap = 1/4, quality_strong = 3/4, total gain 2: every number below is exact.
GAINS = {"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (1.0, 1.0), "d": (0.0, 0.0)}
ORACLE = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
INVERSE = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
PRICES = {
    DEFAULT_CHEAP: ModelPrice(input_price=1.0, output_price=3.0),  # blended 2
    DEFAULT_STRONG: ModelPrice(input_price=10.0, output_price=6.0),  # blended 8
}


def outcomes(pairs: Mapping[str, tuple[float, float]] = GAINS) -> Outcomes:
    rows = tuple(
        Outcome(line=i, prompt=p, cheap_score=c, strong_score=s)
        for i, (p, (c, s)) in enumerate(pairs.items(), start=1)
    )
    return Outcomes(cheap=DEFAULT_CHEAP, strong=DEFAULT_STRONG, split="test", rows=rows)


def lookup(table: Mapping[str, float]) -> Scorer:
    return lambda prompt: table[prompt]


def point(
    threshold: float | None, share: float, quality: float, pgr: float | None, cost: float | None
) -> OperatingPoint:
    return OperatingPoint(
        threshold=threshold, strong_share=share, quality=quality, pgr=pgr, cost=cost
    )


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(prompt: str, scores: Mapping[str, float], split: str = "test") -> str:
    return json.dumps({"split": split, "prompt": prompt, "scores": dict(scores)})


# --- the sweep and the metrics -------------------------------------------------------------


def test_oracle_scorer_reaches_full_gain_at_half_the_calls() -> None:
    report = evaluate(outcomes(), lookup(ORACLE))

    assert report.curve == (
        point(None, 0.0, 0.25, 0.0, None),
        point(4.0, 0.25, 0.5, 0.5, None),
        point(3.0, 0.5, 0.75, 1.0, None),
        point(2.0, 0.75, 0.75, 1.0, None),
        point(1.0, 1.0, 0.75, 1.0, None),
    )
    # 0.25 * (0 + .5) / 2 + 0.25 * (.5 + 1) / 2 + 0.25 * 1 + 0.25 * 1
    assert report.apgr == 0.75
    assert report.cpt_50 == point(4.0, 0.25, 0.5, 0.5, None)
    assert report.cpt_80 == point(3.0, 0.5, 0.75, 1.0, None)
    assert (report.quality_cheap, report.quality_strong) == (0.25, 0.75)
    assert (report.n, report.skipped, report.note, report.random_apgr) == (4, 0, None, 0.5)


def test_inverse_scorer_is_worse_than_random() -> None:
    report = evaluate(outcomes(), lookup(INVERSE))

    assert [p.pgr for p in report.curve] == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert report.apgr == 0.25
    assert report.cpt_50 == point(2.0, 0.75, 0.5, 0.5, None)
    assert report.cpt_80 == point(1.0, 1.0, 0.75, 1.0, None)


def test_constant_scorer_moves_every_prompt_at_once_like_random_routing() -> None:
    report = evaluate(outcomes(), lambda _: 0.3)

    assert report.curve == (point(None, 0.0, 0.25, 0.0, None), point(0.3, 1.0, 0.75, 1.0, None))
    assert report.apgr == report.random_apgr == 0.5
    assert report.cpt_50 == report.cpt_80 == point(0.3, 1.0, 0.75, 1.0, None)


def test_tied_scores_move_together_so_input_order_does_not_matter() -> None:
    tied = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}  # "a" (gain 1) ties with "c" (gain 0)
    forward = evaluate(outcomes(), lookup(tied))
    backward = evaluate(outcomes(dict(reversed(GAINS.items()))), lookup(tied))

    assert forward == backward
    assert forward.curve == (
        point(None, 0.0, 0.25, 0.0, None),
        point(1.0, 0.5, 0.5, 0.5, None),
        point(0.0, 1.0, 0.75, 1.0, None),
    )
    assert forward.apgr == 0.5


def test_table_rows_give_the_highest_threshold_reaching_each_share() -> None:
    report = evaluate(outcomes(), lookup(ORACLE), shares=(0.0, 0.1, 0.25, 0.3, 1.0))

    assert report.rows == (
        TableRow(target_share=0.0, point=point(None, 0.0, 0.25, 0.0, None)),
        TableRow(target_share=0.1, point=point(4.0, 0.25, 0.5, 0.5, None)),
        TableRow(target_share=0.25, point=point(4.0, 0.25, 0.5, 0.5, None)),
        TableRow(target_share=0.3, point=point(3.0, 0.5, 0.75, 1.0, None)),
        TableRow(target_share=1.0, point=point(1.0, 1.0, 0.75, 1.0, None)),
    )


def test_default_table_has_a_row_per_ten_percent() -> None:
    report = evaluate(outcomes(), lookup(ORACLE))

    assert [r.target_share for r in report.rows] == [i / 10 for i in range(11)]


def test_prices_make_cost_linear_in_the_strong_share() -> None:
    report = evaluate(outcomes(), lookup(ORACLE), prices=PRICES)

    assert [p.cost for p in report.curve] == [2.0, 3.5, 5.0, 6.5, 8.0]
    assert (report.cost_cheap, report.cost_strong) == (2.0, 8.0)


def test_equal_quality_leaves_pgr_undefined_instead_of_dividing_by_zero() -> None:
    report = evaluate(outcomes({"a": (1.0, 0.0), "b": (0.0, 1.0)}), lookup(ORACLE))

    assert [p.pgr for p in report.curve] == [None, None, None]
    assert (report.apgr, report.cpt_50, report.cpt_80) == (None, None, None)
    assert report.note == (
        "PGR, APGR and CPT are undefined: both models have the same mean score "
        f"({DEFAULT_CHEAP} 0.5000, {DEFAULT_STRONG} 0.5000), so there is no gap to recover"
    )


def test_a_strong_model_that_scores_lower_is_noted() -> None:
    report = evaluate(outcomes({"a": (1.0, 0.0), "b": (1.0, 1.0)}), lookup(ORACLE))

    assert report.apgr == 0.75
    assert report.note == (
        f"the strong model scores lower than the cheap one ({DEFAULT_CHEAP} 1.0000, "
        f"{DEFAULT_STRONG} 0.5000); PGR is inverted"
    )


def test_progress_is_called_once_per_prompt() -> None:
    calls: list[int] = []
    evaluate(outcomes(), lookup(ORACLE), progress=calls.append)

    assert calls == [1, 1, 1, 1]


@pytest.mark.parametrize("split", ["test", None])
def test_no_rows_is_an_error(split: str | None) -> None:
    empty = Outcomes(cheap=DEFAULT_CHEAP, strong=DEFAULT_STRONG, split=split, rows=())
    where = " in split 'test'" if split else ""

    with pytest.raises(EvaluationError, match=f"^nothing to evaluate: no valid rows{where}$"):
        evaluate(empty, len)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "high"])
def test_scorer_must_return_a_finite_number(value: object) -> None:
    with pytest.raises(EvaluationError, match=r"for the prompt on line 1; expected a finite"):
        evaluate(outcomes(), lambda _: value)  # type: ignore[arg-type,return-value]  # bad scorer on purpose


def test_table_shares_must_be_fractions() -> None:
    with pytest.raises(EvaluationError, match=r"table shares must lie in \[0, 1\]"):
        evaluate(outcomes(), lookup(ORACLE), shares=(0.5, 1.5))


def test_prices_must_cover_both_models() -> None:
    with pytest.raises(EvaluationError, match=f"^no price for model\\(s\\) '{DEFAULT_STRONG}'$"):
        evaluate(outcomes(), len, prices={DEFAULT_CHEAP: PRICES[DEFAULT_CHEAP]})


def test_evaluation_error_is_a_routing_error() -> None:
    assert issubclass(EvaluationError, RoutingError)


# --- loading -------------------------------------------------------------------------------


def test_load_keeps_the_split_and_numbers_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [
            row("p1", {DEFAULT_CHEAP: 0.5, DEFAULT_STRONG: 1, "other": 0.0}),
            "",
            row("p2", {DEFAULT_CHEAP: 0.0}, split="train"),  # other split: not checked
            row("p3", {DEFAULT_CHEAP: 0, DEFAULT_STRONG: 0.25}),
        ],
    )

    assert load_outcomes(path) == Outcomes(
        cheap=DEFAULT_CHEAP,
        strong=DEFAULT_STRONG,
        split="test",
        rows=(
            Outcome(line=1, prompt="p1", cheap_score=0.5, strong_score=1.0),
            Outcome(line=4, prompt="p3", cheap_score=0.0, strong_score=0.25),
        ),
    )


def test_load_all_splits_and_other_models(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [row("p1", {"m": 0.5, "n": 1.0}), row("p2", {"m": 0.0, "n": 0.5}, split="train")],
    )

    loaded = load_outcomes(path, cheap="m", strong="n", split=None)

    assert loaded.rows == (
        Outcome(line=1, prompt="p1", cheap_score=0.5, strong_score=1.0),
        Outcome(line=2, prompt="p2", cheap_score=0.0, strong_score=0.5),
    )
    assert (loaded.cheap, loaded.strong, loaded.split) == ("m", "n", None)


BAD_LINES = [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ("[1, 2]", "expected a JSON object"),
    ('{"split": "test", "prompt": 3, "scores": {}}', '"prompt" must be a string'),
    ('{"split": "test", "prompt": "p", "scores": [1]}', '"scores" must be an object'),
    (row("p", {DEFAULT_STRONG: 1.0}), f"no score for model '{DEFAULT_CHEAP}'"),
    (row("p", {DEFAULT_CHEAP: 1.0}), f"no score for model '{DEFAULT_STRONG}'"),
    (row("p", {DEFAULT_CHEAP: 1.5, DEFAULT_STRONG: 1.0}), "must be a number in [0, 1], got 1.5"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
def test_a_bad_line_names_its_number(tmp_path: Path, bad: str, reason: str) -> None:
    good = row("ok", {DEFAULT_CHEAP: 0.0, DEFAULT_STRONG: 1.0})
    path = write_jsonl(tmp_path / "o.jsonl", [good, bad])

    with pytest.raises(EvaluationError) as caught:
        load_outcomes(path)

    assert str(caught.value).startswith(f"{path}:2: ")
    assert reason in str(caught.value)


@pytest.mark.parametrize("value", [True, "0.5", None])
def test_a_score_must_be_a_number(tmp_path: Path, value: object) -> None:
    line = json.dumps({"split": "test", "prompt": "p", "scores": {DEFAULT_CHEAP: value}})
    path = write_jsonl(tmp_path / "o.jsonl", [line])

    with pytest.raises(EvaluationError, match=f"^{path}:1: score for model '{DEFAULT_CHEAP}'"):
        load_outcomes(path)


def test_skip_invalid_counts_what_it_skipped(tmp_path: Path) -> None:
    lines = [row("ok", {DEFAULT_CHEAP: 0.0, DEFAULT_STRONG: 1.0}), "{oops", BAD_LINES[4][0]]
    path = write_jsonl(tmp_path / "o.jsonl", lines)

    loaded = load_outcomes(path, skip_invalid=True)

    assert [r.prompt for r in loaded.rows] == ["ok"]
    assert loaded.skipped == (
        f"{path}:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:3: no score for model '{DEFAULT_CHEAP}'",
    )
    assert evaluate(loaded, len).skipped == 2


def test_unreadable_files_are_evaluation_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes(b"\xff\xfe{}")

    with pytest.raises(EvaluationError, match=r"^cannot read outcomes file .*missing\.jsonl"):
        load_outcomes(tmp_path / "missing.jsonl")
    with pytest.raises(EvaluationError, match=r"^cannot read outcomes file .*latin1\.jsonl"):
        load_outcomes(tmp_path / "latin1.jsonl")
    with pytest.raises(EvaluationError, match=r"^cannot read price list .*models\.json"):
        load_prices(tmp_path / "models.json")


def test_load_prices_from_the_shared_models_file() -> None:
    prices = load_prices(SHARED / "models.json")

    assert prices[DEFAULT_CHEAP] == ModelPrice(input_price=0.2, output_price=0.2)
    assert prices[DEFAULT_STRONG].blended == 0.9
    assert len(prices) == 9


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "expected a JSON object mapping model names to prices"),
        ('{"m": {"input_price": 1}}', "model 'm' needs numeric input_price and output_price"),
        ('{"m": {"input_price": -1, "output_price": 1}}', "model 'm' needs numeric"),
        ('{"m": {"input_price": true, "output_price": 1}}', "model 'm' needs numeric"),
        ('{"m": 2}', "model 'm' needs numeric"),
    ],
)
def test_bad_price_lists(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(EvaluationError) as caught:
        load_prices(path)

    assert str(caught.value).startswith(f"{path}: {reason}")


# --- renderings ----------------------------------------------------------------------------


def test_format_table_with_prices() -> None:
    report = evaluate(outcomes(), lookup(ORACLE), prices=PRICES)

    assert format_table(report) == (
        f"Routing evaluation: {DEFAULT_CHEAP} (cheap) vs {DEFAULT_STRONG} (strong), "
        "split 'test', 4 prompts\n"
        "Policy: a prompt goes to the strong model when its score >= threshold "
        "('-' sends none).\n"
        "\n"
        "target   threshold   strong  quality      PGR  cost $/Mtok\n"
        "    0%           -     0.0%   0.2500     0.0%       2.0000\n"
        "   10%           4    25.0%   0.5000    50.0%       3.5000\n"
        "   20%           4    25.0%   0.5000    50.0%       3.5000\n"
        "   30%           3    50.0%   0.7500   100.0%       5.0000\n"
        "   40%           3    50.0%   0.7500   100.0%       5.0000\n"
        "   50%           3    50.0%   0.7500   100.0%       5.0000\n"
        "   60%           2    75.0%   0.7500   100.0%       6.5000\n"
        "   70%           2    75.0%   0.7500   100.0%       6.5000\n"
        "   80%           1   100.0%   0.7500   100.0%       8.0000\n"
        "   90%           1   100.0%   0.7500   100.0%       8.0000\n"
        "  100%           1   100.0%   0.7500   100.0%       8.0000\n"
        "\n"
        "APGR: 0.7500 (random routing 0.5000)\n"
        "CPT(50%): 25.0% of calls to strong (threshold 4) (random routing 50.0%)\n"
        "CPT(80%): 50.0% of calls to strong (threshold 3) (random routing 80.0%)\n"
        "Always cheap:  quality 0.2500, cost $2.0000 per million tokens\n"
        "Always strong: quality 0.7500, cost $8.0000 per million tokens\n"
    )


def test_format_table_without_pgr_or_prices() -> None:
    loaded = Outcomes(
        cheap="m",
        strong="n",
        split=None,
        rows=outcomes({"a": (1.0, 0.0), "b": (0.0, 1.0)}).rows,
        skipped=("x:9: not valid JSON",),
    )

    table = format_table(evaluate(loaded, lookup(ORACLE), shares=(0.5,)))

    assert table.splitlines() == [
        "Routing evaluation: m (cheap) vs n (strong), all splits, 2 prompts",
        "Policy: a prompt goes to the strong model when its score >= threshold ('-' sends none).",
        "",
        "target   threshold   strong  quality      PGR",
        "   50%           4    50.0%   0.0000      n/a",
        "",
        "APGR: undefined (random routing 0.5000)",
        "CPT(50%): undefined (random routing 50.0%)",
        "CPT(80%): undefined (random routing 80.0%)",
        "Always cheap:  quality 0.5000",
        "Always strong: quality 0.5000",
        "Skipped 1 invalid row(s).",
        "Note: PGR, APGR and CPT are undefined: both models have the same mean score "
        "(m 0.5000, n 0.5000), so there is no gap to recover.",
    ]


def test_report_to_json_is_plain_data() -> None:
    report = evaluate(outcomes(), lookup(ORACLE), shares=(0.3,))
    cpt_80 = {"threshold": 3.0, "strong_share": 0.5, "quality": 0.75, "pgr": 1.0, "cost": None}

    assert json.loads(report_to_json(report)) == {
        "cheap": DEFAULT_CHEAP,
        "strong": DEFAULT_STRONG,
        "split": "test",
        "n": 4,
        "skipped": 0,
        "quality_cheap": 0.25,
        "quality_strong": 0.75,
        "cost_cheap": None,
        "cost_strong": None,
        "apgr": 0.75,
        "random_apgr": 0.5,
        "cpt_50": {
            "threshold": 4.0,
            "strong_share": 0.25,
            "quality": 0.5,
            "pgr": 0.5,
            "cost": None,
        },
        "cpt_80": cpt_80,
        "note": None,
        "rows": [{"target_share": 0.3, "point": cpt_80}],
    }


def test_report_to_json_can_include_the_curve() -> None:
    report = evaluate(outcomes(), lookup(ORACLE))

    curve = json.loads(report_to_json(report, include_curve=True))["curve"]

    assert [(p["threshold"], p["pgr"]) for p in curve] == [
        (None, 0.0),
        (4.0, 0.5),
        (3.0, 1.0),
        (2.0, 1.0),
        (1.0, 1.0),
    ]


@pytest.mark.parametrize(
    "report",
    [
        evaluate(outcomes(), lookup(ORACLE), prices=PRICES),
        evaluate(outcomes({"a": (1.0, 0.0), "b": (0.0, 1.0)}), lookup(ORACLE)),
    ],
    ids=["priced", "unpriced-undefined-pgr"],
)
def test_save_plot_writes_a_png(tmp_path: Path, report: EvaluationReport) -> None:
    path = tmp_path / "routing.png"

    save_plot(report, path)

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000


def test_save_plot_without_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)

    with pytest.raises(EvaluationError, match=r"tierbot\[plot\]") as caught:
        save_plot(evaluate(outcomes(), lookup(ORACLE)), tmp_path / "x.png")

    assert str(caught.value) == PLOT_HINT
    assert not (tmp_path / "x.png").exists()


def test_save_plot_to_a_missing_directory_is_an_evaluation_error(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"^cannot write plot .*nowhere"):
        save_plot(evaluate(outcomes(), lookup(ORACLE)), tmp_path / "nowhere" / "x.png")


# --- the shared data set -------------------------------------------------------------------


def test_prompt_length_scorer_on_the_shared_test_split() -> None:
    source = SHARED / "open-model-outcomes.jsonl"
    if not source.exists():
        pytest.fail(f"{source} is missing: the shared routing data set must be present")
    calls: list[int] = []

    report = evaluate(
        load_outcomes(source),
        len,
        prices=load_prices(SHARED / "models.json"),
        progress=calls.append,
    )

    assert (report.n, report.skipped, len(calls)) == (356, 0, 356)
    assert 0 <= report.quality_cheap < report.quality_strong <= 1
    assert report.apgr is not None
    assert 0 < report.apgr < 2
    assert report.cpt_50 is not None
    assert report.cpt_80 is not None
    assert 0 < report.cpt_50.strong_share <= report.cpt_80.strong_share <= 1
    assert [r.point.strong_share >= r.target_share for r in report.rows] == [True] * 11
    assert (report.cost_cheap, report.cost_strong) == (0.2, 0.9)
    assert format_table(report).count("\n") == 21
