"""The web applications: the API process (health probes, the OpenAI-compatible API under `/v1`
with its auth, the chat webhooks, `/openapi.json`) and a worker process's health listener, with
their lifetimes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import SecretStr

from bots.access_log import HANDLER_ARGS
from bots.api_settings import API_ENV_PREFIX, ApiSettings
from bots.assembly import LLMStack
from bots.errors import StoreUnavailable
from bots.openai_api import CALLER, CHAT, LLM, Caller, ChatBackend, chat_completions, list_models
from bots.openai_wire import ApiError
from bots.runtime import Messaging, run_worker, webhook_enqueue
from bots.webhooks import add_webhook_routes
from bots.worker import Worker
from routing.execution_settings import ExecutionSettings
from routing.policy import Policy
from routing.router import Router

logger = logging.getLogger(__name__)

API_SETTINGS = web.AppKey("api_settings", ApiSettings)
LLM_FACTORY = web.AppKey[Callable[[], LLMStack]]("llm_factory")
MESSAGING = web.AppKey("messaging", Messaging)
WORKER = web.AppKey("worker", Worker)
OPENAPI = web.AppKey("openapi", bytes)
READINESS_TIMEOUT_S = 1.0
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def create_app(
    *,
    router: Router,
    policy: Policy,
    execution: ExecutionSettings,
    api: ApiSettings,
    llm: Callable[[], LLMStack],
    messaging: Messaging | None = None,
) -> web.Application:
    """The app; `llm` builds the LLM stack at start-up, and the app closes it at clean-up.

    With `messaging` it also serves the chat webhooks (roles web and all) and runs a worker
    (role all), and it closes the pipeline's Redis client last.
    """
    app = web.Application(client_max_size=api.max_body_bytes, handler_args=HANDLER_ARGS)
    app[API_SETTINGS] = api
    app[CHAT] = ChatBackend(
        router=router,
        policy=policy,
        execution=execution,
        stream_batch_s=api.stream_batch_ms / 1000,
    )
    if messaging is not None:  # the fleet's id-hash key, so API log lines join chat ones
        app[CHAT] = replace(app[CHAT], id_key=messaging.id_key)
    _add_lifetimes(app, llm, messaging)
    if messaging is not None and messaging.serves_webhooks:
        add_webhook_routes(
            app,
            channels=messaging.channels,
            enqueue=webhook_enqueue(messaging.stores),
            id_key=messaging.id_key,
            metrics=messaging.metrics,
        )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app[OPENAPI] = resources.files("bots").joinpath("openapi.json").read_bytes()
    app.router.add_get("/openapi.json", openapi)
    v1 = web.Application(middlewares=[_openai_errors, _authenticate])
    v1.router.add_post("/chat/completions", chat_completions)
    v1.router.add_get("/models", list_models)
    app.add_subapp("/v1", v1)
    return app


def create_worker_app(*, messaging: Messaging, llm: Callable[[], LLMStack]) -> web.Application:
    """A worker process's app: `/healthz` and `/readyz` only, running the worker meanwhile."""
    app = web.Application(handler_args=HANDLER_ARGS)
    _add_lifetimes(app, llm, messaging)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _add_lifetimes(
    app: web.Application, llm: Callable[[], LLMStack], messaging: Messaging | None
) -> None:
    """Resources in start-up order (and closed in reverse): Redis, the LLM stack, a worker."""
    app[LLM_FACTORY] = llm
    if messaging is not None:
        app[MESSAGING] = messaging
        app.cleanup_ctx.append(_redis_lifetime)
    app.cleanup_ctx.append(_llm_lifetime)
    if messaging is not None and messaging.runs_worker:
        app.cleanup_ctx.append(_worker_lifetime)


async def _redis_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Say where the pipeline's state lives; close the Redis client after everything else."""
    messaging = app[MESSAGING]
    redis = messaging.stores.redis
    if redis is None:
        logger.warning(
            "REDIS_URL is not set: the queue, chat history and limits live in this process's "
            "memory; queued messages are not durable across restarts"
        )
    yield
    if redis is not None:
        await redis.aclose()


async def _worker_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Consume the queue while the app runs; at clean-up finish or return in-flight turns."""
    async with run_worker(app[MESSAGING], app[LLM]) as worker:
        app[WORKER] = worker
        yield


async def _llm_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Build the provider clients in the running loop, and close them when the app stops."""
    if API_SETTINGS in app and not app[API_SETTINGS].keys:
        logger.warning(
            "%sKEYS is empty: the OpenAI API serves loopback clients only (127.0.0.0/8, ::1); "
            "set it to serve anyone else",
            API_ENV_PREFIX,
        )
    app[LLM] = app[LLM_FACTORY]()
    yield
    await app[LLM].aclose()


async def healthz(request: web.Request) -> web.Response:
    """`GET /healthz`: the process is alive and serving."""
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """`GET /openapi.json`: this listener's OpenAPI description (the admin listener's,
    `bots/openapi_admin.json`, is not served here)."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    """`GET /readyz`: 200 when some tier has a usable model (a provider key, or offline), the
    queue answers and, in a process that runs one, the worker is consuming."""
    app = request.app
    llm = app[LLM]
    problems = [] if any(llm.chains) else ["no usable model"]
    body: dict[str, object] = {
        "offline": llm.offline,
        "providers": sorted(llm.providers),
        "tiers": [len(chain) for chain in llm.chains],
    }
    if MESSAGING in app:
        body["queue"] = await _queue_state(app[MESSAGING])
        if body["queue"] != "ok":
            problems.append("queue unavailable")
    if WORKER in app:
        body["worker"] = "running" if app[WORKER].running else "stopped"
        if not app[WORKER].running:
            problems.append("worker stopped")
    body["status"] = "; ".join(problems) or "ready"
    return web.json_response(body, status=503 if problems else 200)


async def _queue_state(messaging: Messaging) -> str:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            await messaging.stores.queue.stats()
    except (StoreUnavailable, TimeoutError) as exc:
        logger.warning("readiness: queue unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"


def key_identity(key: str) -> str:
    """The routing identity of an API key: a short hash, so logs and entitlements never hold it."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def match_key(presented: str, keys: Sequence[SecretStr]) -> str | None:
    """The identity of the configured key equal to `presented`, compared in constant time."""
    digest = hashlib.sha256(presented.encode()).digest()
    found = None
    for key in keys:
        secret = key.get_secret_value()
        if hmac.compare_digest(digest, hashlib.sha256(secret.encode()).digest()):
            found = key_identity(secret)
    return found


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8 and ::1 (also IPv4-mapped); False for anything else or no address."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer keys when configured; otherwise loopback clients only, and none via a proxy."""
    keys = request.config_dict[API_SETTINGS].keys
    if keys:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        identity = match_key(token.strip(), keys) if scheme.lower() == "bearer" else None
        if identity is None:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        request[CALLER] = Caller(identity=identity)
    elif is_loopback(request.remote) and not any(h in request.headers for h in _PROXY_HEADERS):
        request[CALLER] = Caller(identity=None)
    else:
        raise ApiError(
            403,
            f"no API keys are configured ({API_ENV_PREFIX}KEYS), so only loopback clients "
            "are served",
            kind="permission_error",
            code="loopback_only",
        )
    return await handler(request)


@web.middleware
async def _openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render refusals, and aiohttp's own HTTP errors (405, 413, ...), in OpenAI's error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPError as exc:
        code = exc.reason.lower().replace(" ", "_")
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None  # a 405's
        return ApiError(exc.status, exc.text or exc.reason, code=code, headers=allow).response()
