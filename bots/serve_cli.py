"""The `tierbot serve` command: run a role (web, worker or both) until SIGTERM or SIGINT, then
shut down cleanly: stop accepting, let open requests and in-flight turns finish, close."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from bots.admin import AdminListener, create_admin_app, mount_admin
from bots.admin_settings import AdminSettings, load_admin_settings
from bots.api_settings import load_api_settings
from bots.assembly import build_llm_stack
from bots.channel_settings import load_channel_settings
from bots.metrics import Metrics, MetricsRefresher
from bots.openai_api import LLM
from bots.queue import Queue
from bots.runtime import ROLES, Messaging, Role, build_stores, connect_redis
from bots.web import create_app, create_worker_app
from bots.worker_settings import WorkerSettings, load_worker_settings
from feedback.errors import FeedbackConfigError, StoreError
from feedback.settings import load_feedback_settings
from routing.errors import ConfigError
from routing.execution_settings import ExecutionSettings, load_execution_settings
from routing.policy import Policy
from routing.router import Router

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def add_serve_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` to the top-level command group."""
    serve = groups.add_parser(
        "serve",
        help="run the web server (OpenAI-compatible API, chat webhooks, /healthz, /readyz) "
        "and the workers that answer the chats",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="web: the API and the webhooks; worker: the queue consumers and a health listener "
        "on TIERBOT_ADMIN_PORT; all (default): both in one process",
    )
    serve.add_argument("--host", help="address to listen on (default TIERBOT_API_HOST)")
    serve.add_argument(
        "--port",
        type=int,
        help="port to listen on, 0 for any "
        "(TIERBOT_API_PORT; TIERBOT_ADMIN_PORT for --role worker)",
    )
    serve.add_argument(
        "--offline", action="store_true", help="answer with the labelled offline provider"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Serving:
    """A role's app and where it listens."""

    app: web.Application
    host: str
    port: int
    shutdown_grace_s: float
    """How long open requests may run on after SIGTERM."""


def run_serve(args: argparse.Namespace, *, policy: Policy, router: Router) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status (2 for a bad setting)."""
    try:
        serving = build_serving(args, policy=policy, router=router)
        asyncio.run(
            serve(
                serving.app,
                host=serving.host,
                port=serving.port,
                shutdown_grace_s=serving.shutdown_grace_s,
            )
        )
    except (ConfigError, FeedbackConfigError) as exc:  # also raised at start-up (LLM stack)
        sys.stderr.write(f"tierbot: {exc}\n")
        return 2
    except StoreError as exc:  # the feedback database, opened at start-up
        sys.stderr.write(f"tierbot: {exc}\n")
        return 1
    except OSError as exc:  # the address is taken or not ours
        sys.stderr.write(f"tierbot: cannot serve: {exc}\n")
        return 1
    return 0


def build_serving(args: argparse.Namespace, *, policy: Policy, router: Router) -> Serving:
    """Read the settings and build the app of `args.role`; raises ConfigError or
    FeedbackConfigError naming a bad variable. Nothing is connected until the app starts."""
    api = load_api_settings()
    execution, credentials = load_execution_settings()
    metrics = Metrics()
    metrics.publish_slo(execution.ttft_slo_seconds, tiers=policy.top)
    messaging = _messaging(args.role, load_worker_settings(), execution, router, metrics)
    llm = functools.partial(
        build_llm_stack,
        policy=policy,
        settings=execution,
        credentials=credentials,
        offline=args.offline,
        redis=messaging.stores.redis,
        redis_prefix=messaging.settings.redis_key_prefix,
    )
    grace = api.shutdown_grace_seconds
    admin = load_admin_settings()
    if messaging.role == "worker":
        settings = messaging.settings
        worker_app = create_worker_app(messaging=messaging, llm=llm)
        if _admin_on(admin):
            mount_admin(worker_app, settings=admin, feedback=messaging.feedback, metrics=metrics)
            worker_app.cleanup_ctx.append(refresh_metrics(metrics, messaging.stores.queue))
        return Serving(
            app=worker_app,
            host=settings.admin_host if args.host is None else args.host,
            port=settings.admin_port if args.port is None else args.port,
            shutdown_grace_s=grace,
        )
    app = create_app(
        router=router, policy=policy, execution=execution, api=api, llm=llm, messaging=messaging
    )
    if _admin_on(admin):
        admin_app = create_admin_app(settings=admin, feedback=messaging.feedback, metrics=metrics)
        listener = AdminListener(
            admin_app, host=messaging.settings.admin_host, port=messaging.settings.admin_port
        )
        app.cleanup_ctx.append(refresh_metrics(metrics, messaging.stores.queue))
        app.cleanup_ctx.append(listener)
    return Serving(
        app=app,
        host=api.host if args.host is None else args.host,
        port=api.port if args.port is None else args.port,
        shutdown_grace_s=grace,
    )


def refresh_metrics(
    metrics: Metrics, queue: Queue
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` entry, appended after the LLM stack's: while the app runs, refresh the
    queue's stats and the breaker of every `provider:model` of the tier chains into `metrics`."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        llm = app[LLM]
        keys = [link.key for chain in llm.chains for link in chain]
        refresher = MetricsRefresher(metrics, queue=queue, breaker=llm.breaker, keys=keys)
        async with refresher.running():
            yield

    return lifetime


def _admin_on(admin: AdminSettings) -> bool:
    """The admin pages and /metrics run only with a token; without one, say how to get them."""
    if admin.admin_token is None:
        logger.warning("admin pages and /metrics are off: set TIERBOT_ADMIN_TOKEN to serve them")
        return False
    return True


def _messaging(
    role: Role,
    settings: WorkerSettings,
    execution: ExecutionSettings,
    router: Router,
    metrics: Metrics,
) -> Messaging:
    """The pipeline's settings and stores for `role`; a split role needs the shared Redis."""
    if role != "all" and settings.redis_url is None:
        raise ConfigError(
            f"--role {role} needs REDIS_URL: the web and worker processes share the queue "
            "through Redis (or run --role all, one process with everything in memory)"
        )
    return Messaging(
        role=role,
        settings=settings,
        channels=load_channel_settings(),
        feedback=load_feedback_settings(),
        stores=build_stores(settings, connect_redis(settings)),
        router=router,
        execution=execution,
        metrics=metrics,
    )


async def serve(app: web.Application, *, host: str, port: int, shutdown_grace_s: float) -> None:
    """Run `app` on host:port until SIGTERM or SIGINT; let open requests finish, then clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=shutdown_grace_s)
    try:
        await runner.setup()  # inside: a failed start-up still closes what it opened
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
