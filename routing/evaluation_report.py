"""Renderings of a routing `EvaluationReport`: a text table, JSON and a quality-against-cost PNG."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from routing.errors import EvaluationError
from routing.evaluation import EvaluationReport, OperatingPoint

PLOT_HINT = "plotting needs matplotlib: install it with `pip install 'tierbot[plot]'`"


def format_table(report: EvaluationReport) -> str:
    """Render the sweep (one row per target share) and the summary lines as plain text."""
    split = "all splits" if report.split is None else f"split {report.split!r}"
    cost_head = "  cost $/Mtok" if report.cost_cheap is not None else ""
    lines = [
        f"Routing evaluation: {report.cheap} (cheap) vs {report.strong} (strong), "
        f"{split}, {report.n} prompts",
        "Policy: a prompt goes to the strong model when its score >= threshold ('-' sends none).",
        "",
        f"{'target':>6}  {'threshold':>10}  {'strong':>7}  {'quality':>7}  {'PGR':>7}{cost_head}",
    ]
    for row in report.rows:
        p = row.point
        cost = "" if p.cost is None else f"  {p.cost:11.4f}"
        lines.append(
            f"{row.target_share:>6.0%}  {_threshold(p.threshold):>10}  {p.strong_share:>7.1%}  "
            f"{p.quality:>7.4f}  {_pgr(p.pgr):>7}{cost}"
        )
    lines += ["", *_summary(report)]
    return "\n".join(lines) + "\n"


def report_to_json(report: EvaluationReport, *, include_curve: bool = False) -> str:
    """Serialise the report; ``include_curve`` adds every operating point of the sweep."""
    data = asdict(report)
    if not include_curve:
        del data["curve"]
    return json.dumps(data, indent=2, allow_nan=False)


def save_plot(report: EvaluationReport, path: Path) -> None:
    """Write a PNG of quality against cost: router curve, random line, cheap and strong points."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise EvaluationError(PLOT_HINT) from exc
    figure = Figure(figsize=(7, 5), dpi=100)
    FigureCanvasAgg(figure)  # attaches the Agg canvas; no pyplot, no global backend switch
    axes = figure.add_subplot()
    xs = [_x(p) for p in report.curve]
    cheap, strong = report.curve[0], report.curve[-1]
    axes.plot(xs, [p.quality for p in report.curve], label="router")
    axes.plot([xs[0], xs[-1]], [cheap.quality, strong.quality], "--", label="random")
    axes.plot([xs[0]], [cheap.quality], "o", label=f"always {report.cheap}")
    axes.plot([xs[-1]], [strong.quality], "s", label=f"always {report.strong}")
    priced = report.cost_cheap is not None
    axes.set_xlabel("cost (USD per million tokens)" if priced else "calls to the strong model (%)")
    axes.set_ylabel("quality (mean score)")
    apgr = "undefined" if report.apgr is None else f"{report.apgr:.3f}"
    axes.set_title(f"Routing quality vs cost ({report.n} prompts, APGR {apgr})")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise EvaluationError(f"cannot write plot {path}: {exc}") from exc


def _x(point: OperatingPoint) -> float:
    return point.strong_share * 100 if point.cost is None else point.cost


def _threshold(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _pgr(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _summary(report: EvaluationReport) -> list[str]:
    apgr = "undefined" if report.apgr is None else f"{report.apgr:.4f}"
    lines = [
        f"APGR: {apgr} (random routing {report.random_apgr:.4f})",
        f"CPT(50%): {_cpt(report.cpt_50)} (random routing 50.0%)",
        f"CPT(80%): {_cpt(report.cpt_80)} (random routing 80.0%)",
        f"Always cheap:  quality {report.quality_cheap:.4f}{_price(report.cost_cheap)}",
        f"Always strong: quality {report.quality_strong:.4f}{_price(report.cost_strong)}",
    ]
    if report.skipped:
        lines.append(f"Skipped {report.skipped} invalid row(s).")
    if report.note is not None:
        lines.append(f"Note: {report.note}.")
    return lines


def _cpt(point: OperatingPoint | None) -> str:
    if point is None:
        return "undefined"
    return f"{point.strong_share:.1%} of calls to strong (threshold {_threshold(point.threshold)})"


def _price(cost: float | None) -> str:
    return "" if cost is None else f", cost ${cost:.4f} per million tokens"
