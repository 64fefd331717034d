"""The composition root and `tierbot` command line: loads settings, wires objects, dispatches."""

from __future__ import annotations

import argparse
import logging.config
import sys
from collections.abc import Sequence

from bots import (
    chat_cli,
    eval_cli,
    feedback_cli,
    queue_cli,
    route_cli,
    serve_cli,
    webhook_cli,
)
from bots.channel_settings import load_channel_settings
from bots.worker_settings import load_worker_settings
from feedback.errors import FeedbackConfigError
from feedback.settings import load_feedback_settings
from routing.errors import ConfigError, RoutingError
from routing.execution_settings import load_execution_settings
from routing.policy import Policy, build_policy
from routing.router import Router
from routing.settings import RoutingSettings, load_routing_settings
from routing.signals.complexity import load_complexity_model
from routing.types import Conversation, Turn

logger = logging.getLogger(__name__)


def _configure_logging(level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
            },
            "root": {"handlers": ["stderr"], "level": level},
        }
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierbot", description=__doc__)
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    policy = groups.add_parser("policy", help="the escalation policy")
    policy_cmds = policy.add_subparsers(dest="command", required=True)
    policy_cmds.add_parser("show", help="print the effective policy, secrets masked")

    route = groups.add_parser("route", help="routing decisions")
    route_cmds = route.add_subparsers(dest="command", required=True)
    explain = route_cmds.add_parser(
        "explain", help="explain the decision for a message, or for JSONL conversations on stdin"
    )
    explain.add_argument("message", nargs="?", help="a message; omit to read JSONL from stdin")
    explain.add_argument("--user", help="user id, for entitlement")
    explain.add_argument("--channel", help="channel or surface name, for floors and ceilings")
    explain.add_argument("--json", action="store_true", help="print the JSON contract line")

    evaluate = groups.add_parser("eval", help="offline evaluation")
    eval_cmds = evaluate.add_subparsers(dest="command", required=True)
    eval_cli.add_routing_parser(eval_cmds)
    serve_cli.add_serve_parser(groups)
    chat_cli.add_parser(groups)
    webhook_cli.add_parser(groups)
    feedback_cli.add_parser(groups)
    queue_cli.add_parser(groups)
    return parser


def _build(settings: RoutingSettings) -> tuple[Policy, Router]:
    policy = build_policy(settings)
    return policy, Router(policy=policy, complexity=load_complexity_model())


def _explain(router: Router, args: argparse.Namespace) -> int:
    if args.message is None:
        errors = route_cli.explain_lines(router, sys.stdin, sys.stdout, sys.stderr)
        return 1 if errors else 0
    conversation = Conversation(
        turns=(Turn(role="user", text=args.message),), user=args.user, channel=args.channel
    )
    decision = router.decide(conversation)
    if args.json:
        sys.stdout.write(route_cli.decision_json(None, decision) + "\n")
    else:
        sys.stdout.write(route_cli.explain_text(decision) + "\n")
    return 0


def _run_standalone(args: argparse.Namespace) -> int:
    """Commands that need neither the router nor the LLM side: the log and the webhook."""
    try:
        if args.group == "feedback":
            return feedback_cli.run(args, load_feedback_settings())
        if args.group == "queue":
            return queue_cli.run(load_worker_settings(), args, sys.stdout, sys.stderr)
        return webhook_cli.run(load_channel_settings(), args, sys.stdout, sys.stderr)
    except (FeedbackConfigError, ConfigError) as exc:
        sys.stderr.write(f"tierbot: {exc}\n")
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `tierbot` command line; return the process exit status."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level.upper())
    if args.group in ("feedback", "webhook", "queue"):
        return _run_standalone(args)
    try:
        settings = load_routing_settings()
        policy, router = _build(settings)
    except ConfigError as exc:
        sys.stderr.write(f"tierbot: {exc}\n")
        return 2
    try:
        match args.group:
            case "policy":
                sys.stdout.write(route_cli.policy_text(policy, [settings]) + "\n")
                return 0
            case "route":
                return _explain(router, args)
            case "serve":
                return serve_cli.run_serve(args, policy=policy, router=router)
            case "chat":
                execution = load_execution_settings()
                return chat_cli.run(args, router, execution, sys.stdin, sys.stdout, sys.stderr)
            case _:
                return eval_cli.run_routing(router, args)
    except RoutingError as exc:
        sys.stderr.write(f"tierbot: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
