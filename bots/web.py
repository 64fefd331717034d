"""The web application: health probes and the OpenAI-compatible API under `/v1`, with its auth."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import SecretStr

from bots.api_settings import API_ENV_PREFIX, ApiSettings
from bots.assembly import LLMStack
from bots.openai_api import CALLER, CHAT, LLM, Caller, ChatBackend, chat_completions, list_models
from bots.openai_wire import ApiError
from routing.execution_settings import ExecutionSettings
from routing.policy import Policy
from routing.router import Router

logger = logging.getLogger(__name__)

API_SETTINGS = web.AppKey("api_settings", ApiSettings)
LLM_FACTORY = web.AppKey[Callable[[], LLMStack]]("llm_factory")
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def create_app(
    *,
    router: Router,
    policy: Policy,
    execution: ExecutionSettings,
    api: ApiSettings,
    llm: Callable[[], LLMStack],
) -> web.Application:
    """The app; `llm` builds the LLM stack at start-up, and the app closes it at clean-up."""
    app = web.Application(client_max_size=api.max_body_bytes)
    app[API_SETTINGS] = api
    app[CHAT] = ChatBackend(router=router, policy=policy, execution=execution)
    app[LLM_FACTORY] = llm
    app.cleanup_ctx.append(_llm_lifetime)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    v1 = web.Application(middlewares=[_openai_errors, _authenticate])
    v1.router.add_post("/chat/completions", chat_completions)
    v1.router.add_get("/models", list_models)
    app.add_subapp("/v1", v1)
    return app


async def _llm_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Build the provider clients in the running loop, and close them when the app stops."""
    if not app[API_SETTINGS].keys:
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


async def readyz(request: web.Request) -> web.Response:
    """`GET /readyz`: 200 when some tier has a usable model (a provider key, or offline)."""
    llm = request.app[LLM]
    ready = any(llm.chains)
    body = {
        "status": "ready" if ready else "no usable model",
        "offline": llm.offline,
        "providers": sorted(llm.providers),
        "tiers": [len(chain) for chain in llm.chains],
    }
    return web.json_response(body, status=200 if ready else 503)


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
        return ApiError(exc.status, exc.text or exc.reason, code=code).response()
