"""The `tierbot feedback review|report|export|forget` commands over the feedback store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from feedback.errors import FeedbackError, QueryError
from feedback.export import export_turns
from feedback.filters import TurnFilter, parse_when
from feedback.render import conversation_text, report_text, review_text, to_json
from feedback.report import build_report
from feedback.report_types import parse_prices
from feedback.review import open_turn, review_turns
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore
from feedback.types import OUTCOMES, RATINGS


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="from this time: 24h, 7d, 2w or an ISO date/time (UTC)")
    parser.add_argument("--until", help="before this time, same forms as --since")
    parser.add_argument("--channel", help="only this channel (telegram, whatsapp, api...)")
    parser.add_argument("--surface", help="only this surface (private, group, api...)")
    parser.add_argument("--tier", type=int, help="only turns answered on this tier")
    parser.add_argument("--reason", help="only decisions carrying this reason code")
    parser.add_argument("--rating", choices=RATINGS, help="only turns users rated so")
    parser.add_argument("--misroute", action="store_true", help="only turns found misrouted")
    parser.add_argument("--outcome", choices=OUTCOMES, help="only turns that ended so")


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `feedback` command group to the `tierbot` parser."""
    group = groups.add_parser("feedback", help="the feedback log: review, report, export, forget")
    commands = group.add_subparsers(dest="command", required=True)

    review = commands.add_parser("review", help="list turns, or open one with its conversation")
    _add_filters(review)
    review.add_argument("--turn", help="open this turn with the conversation around it")
    review.add_argument("--context", type=int, default=5, help="turns either side (default 5)")
    review.add_argument("--limit", type=int, default=50, help="most turns listed (default 50)")
    review.add_argument("--json", action="store_true", help="print JSON")

    report = commands.add_parser("report", help="cost, savings, misroutes, latency, errors")
    report.add_argument("--since", default="7d", help="period start (default 7d ago)")
    report.add_argument("--until", help="period end (default now)")
    report.add_argument(
        "--prices",
        help='price every turn at {"top": {"input_per_mtok": N, "output_per_mtok": N}, '
        '"mid": {...}} instead of the prices recorded with each turn',
    )
    report.add_argument("--top", type=int, default=10, help="top spenders listed (default 10)")
    report.add_argument("--json", action="store_true", help="print JSON")

    export = commands.add_parser("export", help="turns as JSONL or CSV, for router tuning")
    _add_filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", type=Path, help="write to this file (default stdout)")
    export.add_argument("--no-text", action="store_true", help="leave message texts out")

    forget = commands.add_parser("forget", help="delete one user's turns and events")
    forget.add_argument("user", help="the user's raw platform id (it is hashed, never stored)")
    forget.add_argument("--json", action="store_true", help="print JSON")


def run(
    args: argparse.Namespace,
    settings: FeedbackSettings,
    *,
    out: IO[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Run a `feedback` command; return the exit status (1 with a message on stderr on error)."""
    when = now or datetime.now(UTC)
    if args.command == "export" and args.output is not None:
        try:
            target = args.output.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            sys.stderr.write(f"tierbot: cannot write {args.output}: {exc.strerror}\n")
            return 1
        with target:
            return _status(args, settings, target, when)
    return _status(args, settings, out or sys.stdout, when)


def _status(
    args: argparse.Namespace, settings: FeedbackSettings, out: IO[str], now: datetime
) -> int:
    try:
        return asyncio.run(_run(args, settings, out, now))
    except FeedbackError as exc:
        sys.stderr.write(f"tierbot: {exc}\n")
        return 1


def _filter(args: argparse.Namespace, now: datetime) -> TurnFilter:
    return TurnFilter(
        since=None if args.since is None else parse_when(args.since, now),
        until=None if args.until is None else parse_when(args.until, now),
        channel=args.channel,
        surface=args.surface,
        tier=args.tier,
        reason=args.reason,
        rating=args.rating,
        misroute=args.misroute,
        outcome=args.outcome,
    )


async def _run(
    args: argparse.Namespace, settings: FeedbackSettings, out: IO[str], now: datetime
) -> int:
    flt = _filter(args, now) if args.command in ("review", "export") else None
    prices = parse_prices(args.prices) if args.command == "report" and args.prices else None
    store = await FeedbackStore.open(settings)
    try:
        async with asyncio.timeout(settings.feedback_query_timeout_s):
            match args.command:
                case "review":
                    assert flt is not None
                    await _review(store, args, flt, out)
                case "report":
                    since = parse_when(args.since, now)
                    until = None if args.until is None else parse_when(args.until, now)
                    report = await build_report(
                        store, since=since, until=until, prices=prices, top=args.top
                    )
                    out.write((to_json(report) if args.json else report_text(report)) + "\n")
                case "export":
                    assert flt is not None
                    await _export(store, args, flt, out)
                case _:
                    gone = await store.forget(args.user)
                    text = (
                        f"forgot {gone.turns} turns, {gone.attempts} attempts, {gone.events} events"
                    )
                    out.write((to_json(gone) if args.json else text) + "\n")
    except TimeoutError:
        raise QueryError(
            f"the query took longer than TIERBOT_FEEDBACK_QUERY_TIMEOUT_S="
            f"{settings.feedback_query_timeout_s:g} s"
        ) from None
    finally:
        await store.aclose()
    return 0


async def _review(
    store: FeedbackStore, args: argparse.Namespace, flt: TurnFilter, out: IO[str]
) -> None:
    if args.turn is not None:
        view = await open_turn(store, args.turn, context=args.context)
        out.write((to_json(view) if args.json else conversation_text(view)) + "\n")
        return
    lines = await review_turns(store, flt, limit=args.limit)
    out.write((to_json(lines) if args.json else review_text(lines)) + "\n")


async def _export(
    store: FeedbackStore, args: argparse.Namespace, flt: TurnFilter, out: IO[str]
) -> None:
    count = await export_turns(store, flt, out, fmt=args.format, include_text=not args.no_text)
    if args.output is not None:
        sys.stderr.write(f"exported {count} turns to {args.output}\n")
