"""The `tierbot eval routing` command: the complexity score's cost against quality on a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from routing.evaluation import evaluate
from routing.evaluation_data import (
    DEFAULT_CHEAP,
    DEFAULT_SPLIT,
    DEFAULT_STRONG,
    load_outcomes,
    load_prices,
)
from routing.evaluation_report import format_table, report_to_json, save_plot
from routing.router import Router


def add_routing_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `eval routing` to the `eval` sub-command group."""
    p = commands.add_parser(
        "routing", help="sweep the complexity threshold: quality against cost, APGR, CPT"
    )
    p.add_argument("file", type=Path, help='JSONL: {"split"?, "prompt", "scores": {model: 0..1}}')
    p.add_argument("--cheap", default=DEFAULT_CHEAP, help=f"cheap model (default {DEFAULT_CHEAP})")
    p.add_argument(
        "--strong", default=DEFAULT_STRONG, help=f"strong model (default {DEFAULT_STRONG})"
    )
    p.add_argument("--split", default=DEFAULT_SPLIT, help="split to evaluate; 'all' for every row")
    p.add_argument("--prices", type=Path, help="models.json with input/output USD per M tokens")
    p.add_argument("--plot", type=Path, help="write a PNG of quality against cost here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--skip-invalid", action="store_true", help="skip unreadable rows, count them")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_routing(router: Router, args: argparse.Namespace) -> int:
    """Evaluate the router's complexity score; print a table (or JSON), optionally a plot."""
    outcomes = load_outcomes(
        args.file,
        cheap=args.cheap,
        strong=args.strong,
        split=None if args.split == "all" else args.split,
        skip_invalid=args.skip_invalid,
    )
    for message in outcomes.skipped:
        sys.stderr.write(f"skipped {message}\n")
    prices = load_prices(args.prices) if args.prices else None
    with tqdm(
        total=len(outcomes.rows), desc="scoring", unit="prompt", disable=args.no_progress
    ) as bar:
        report = evaluate(
            outcomes,
            lambda text: router.complexity(text).score,
            prices=prices,
            progress=bar.update,
        )
    sys.stdout.write(report_to_json(report) + "\n" if args.json else format_table(report))
    if args.plot:
        save_plot(report, args.plot)
        sys.stderr.write(f"plot written to {args.plot}\n")
    return 0
