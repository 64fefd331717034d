"""The `tierbot serve` command: run the web app until SIGTERM or SIGINT, then shut down cleanly."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys

from aiohttp import web

from bots.api_settings import load_api_settings
from bots.assembly import build_llm_stack
from bots.web import create_app
from routing.errors import ConfigError
from routing.execution_settings import load_execution_settings
from routing.policy import Policy
from routing.router import Router

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def add_serve_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` to the top-level command group."""
    serve = groups.add_parser(
        "serve", help="run the web server: the OpenAI-compatible API, /healthz and /readyz"
    )
    serve.add_argument("--host", help="address to listen on (default TIERBOT_API_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 for any (TIERBOT_API_PORT)")
    serve.add_argument(
        "--offline", action="store_true", help="answer with the labelled offline provider"
    )


def run_serve(args: argparse.Namespace, *, policy: Policy, router: Router) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status (2 for a bad setting)."""
    try:
        api = load_api_settings()
        execution, credentials = load_execution_settings()
        llm = functools.partial(
            build_llm_stack,
            policy=policy,
            settings=execution,
            credentials=credentials,
            offline=args.offline,
            redis=None,
        )
        app = create_app(router=router, policy=policy, execution=execution, api=api, llm=llm)
        asyncio.run(
            serve(
                app,
                host=api.host if args.host is None else args.host,
                port=api.port if args.port is None else args.port,
                shutdown_grace_s=api.shutdown_grace_seconds,
            )
        )
    except ConfigError as exc:  # also raised at start-up, when the LLM stack is built
        sys.stderr.write(f"tierbot: {exc}\n")
        return 2
    except OSError as exc:  # the address is taken or not ours
        sys.stderr.write(f"tierbot: cannot serve: {exc}\n")
        return 1
    return 0


async def serve(app: web.Application, *, host: str, port: int, shutdown_grace_s: float) -> None:
    """Run `app` on host:port until SIGTERM or SIGINT; let open requests finish, then clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=shutdown_grace_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        for address in runner.addresses:
            sys.stderr.write(f"tierbot: serving on http://{_host_port(address)}\n")
        await stop.wait()
        logger.info("shutting down: finishing open requests")
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await runner.cleanup()


def _host_port(address: tuple[str, int]) -> str:
    """`host:port` of a TCP socket address (`[host]:port` for IPv6)."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
