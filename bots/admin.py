"""The admin listener's app: token login, review and report pages, `/metrics` and probes.

It is a `web.Application` of its own, served on `TIERBOT_ADMIN_HOST:TIERBOT_ADMIN_PORT`,
never mounted on the public app. Everything but `/healthz`, `/readyz` and the login page needs
the token, as a bearer header (Prometheus) or as the session cookie the login form sets. The
cookie holds an expiry and its HMAC under the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import SecretStr

from bots.access_log import HANDLER_ARGS
from bots.admin_html import conversation_page, error_page, login_page, report_page, review_page
from bots.admin_settings import AdminSettings
from bots.metrics import CONTENT_TYPE, Metrics
from feedback.errors import QueryError, StoreError, TurnNotFound
from feedback.filters import TurnFilter, parse_when
from feedback.report import build_report
from feedback.review import open_turn as open_feedback_turn
from feedback.review import review_turns
from feedback.settings import FeedbackSettings
from feedback.store import FeedbackStore
from feedback.types import RATINGS

logger = logging.getLogger(__name__)

ADMIN_SETTINGS = web.AppKey("admin_settings", AdminSettings)
ADMIN_TOKEN = web.AppKey("admin_token", SecretStr)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("feedback_store", FeedbackStore)
COOKIE = "tierbot_admin"
_NUMBER = re.compile(r"[0-9]{1,12}")
"""An ASCII number small enough for any column: `str.isdigit` also passes `²`, and SQLite
overflows past 2**63."""
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/admin/login"})
REVIEW_LIMIT = 200
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

StoreOpener = Callable[[], Awaitable[FeedbackStore]]


def create_admin_app(
    *, settings: AdminSettings, feedback: FeedbackSettings | StoreOpener, metrics: Metrics
) -> web.Application:
    """The admin listener's app: `mount_admin` on a fresh app, plus `/healthz` and `/readyz`
    (ready once the feedback store is open). Raises ConfigError naming `TIERBOT_ADMIN_TOKEN`
    when no token is set."""
    app = web.Application(handler_args=HANDLER_ARGS)
    mount_admin(app, settings=settings, feedback=feedback, metrics=metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


def mount_admin(
    app: web.Application,
    *,
    settings: AdminSettings,
    feedback: FeedbackSettings | StoreOpener,
    metrics: Metrics,
) -> None:
    """Add the admin pages, `/metrics` and their token check to `app`, before it starts.

    For a listener that already serves its own probes (a worker's health app): its
    `/healthz` and `/readyz` stay open. `feedback` is the log's settings (the store is opened
    at start-up and closed at clean-up) or a coroutine function that opens it (the app still
    closes it). Raises ConfigError naming `TIERBOT_ADMIN_TOKEN` when no token is set.
    """
    app[ADMIN_TOKEN] = settings.token()
    app[ADMIN_SETTINGS] = settings
    app[METRICS] = metrics
    app.middlewares.append(_headers)
    app.middlewares.append(_authenticate)
    opener = feedback if callable(feedback) else _opener(feedback)
    app.cleanup_ctx.append(_store_lifetime(opener))
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/admin", _home)
    app.router.add_get("/admin/", _home)
    app.router.add_get("/admin/login", _login_form)
    app.router.add_post("/admin/login", _login)
    app.router.add_post("/admin/logout", _logout)
    app.router.add_get("/admin/review", _review)
    app.router.add_get("/admin/turn/{turn_id}", _turn)
    app.router.add_get("/admin/report", _report)


class AdminListener:
    """A `cleanup_ctx` entry for the public app: serve the admin app on host:port (its own
    runner and socket, so no admin path ever reaches the public listener) while it runs."""

    def __init__(self, admin: web.Application, *, host: str, port: int) -> None:
        self._admin = admin
        self._host = host
        self._port = port
        self.addresses: list[object] = []
        """Where it listens once started (the real port when `port` is 0)."""

    async def __call__(self, _public: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(self._admin)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
            self.addresses = list(runner.addresses)
            logger.info("admin listener on %s", self.addresses)
            yield
        finally:
            await runner.cleanup()


def _opener(settings: FeedbackSettings) -> StoreOpener:
    async def open_store() -> FeedbackStore:
        return await FeedbackStore.open(settings)

    return open_store


def _store_lifetime(
    opener: StoreOpener,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = await opener()
        try:
            yield
        finally:
            await app[STORE].aclose()

    return lifetime


def session_value(token: SecretStr, expires: int) -> str:
    """The cookie for a session ending at `expires` (Unix seconds): expiry and its HMAC."""
    mac = hmac.new(token.get_secret_value().encode(), f"session:{expires}".encode(), "sha256")
    return f"{expires}.{mac.hexdigest()}"


def valid_session(token: SecretStr, value: str, now: float) -> bool:
    """True for an unexpired cookie made by `session_value` with this token."""
    expires, _, _ = value.partition(".")
    if _NUMBER.fullmatch(expires) is None or int(expires) <= now:
        return False
    return hmac.compare_digest(value.encode(), session_value(token, int(expires)).encode())


def token_matches(token: SecretStr, presented: str) -> bool:
    """Constant-time comparison of `presented` with the token (hashed: lengths do not leak)."""
    want = hashlib.sha256(token.get_secret_value().encode()).digest()
    return hmac.compare_digest(want, hashlib.sha256(presented.encode()).digest())


def _authorised(request: web.Request) -> bool:
    token = request.app[ADMIN_TOKEN]
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(token, presented.strip()):
        return True
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and valid_session(token, cookie, time.time())


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Open paths pass; anything else needs the token (pages redirect to the login form)."""
    if request.path in OPEN_PATHS or _authorised(request):
        return await handler(request)
    if request.path.startswith("/admin"):
        raise web.HTTPSeeOther("/admin/login")
    raise web.HTTPUnauthorized(
        text="admin token required\n", headers={"WWW-Authenticate": 'Bearer realm="tierbot"'}
    )


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No framing, no sniffing, no caching, no scripts, no outside resources."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(_HEADERS)
        raise
    response.headers.update(_HEADERS)
    return response


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    ready = STORE in request.app
    return web.json_response(
        {"status": "ready" if ready else "feedback store not open"}, status=200 if ready else 503
    )


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/admin/review")


async def _login_form(request: web.Request) -> web.Response:
    return _html(login_page())


async def _login(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except ValueError:  # a multipart body without a boundary; UnicodeDecodeError is one too
        return _html(login_page("Could not read the form: send the token field."), status=400)
    presented = form.get("token")
    token = request.app[ADMIN_TOKEN]
    if not isinstance(presented, str) or not token_matches(token, presented):
        logger.warning("admin login refused remote=%s", request.remote)
        return _html(login_page("That token is not right."), status=401)
    settings = request.app[ADMIN_SETTINGS]
    lifetime = int(settings.admin_session_hours * 3600)
    response = web.HTTPSeeOther("/admin/review")
    response.set_cookie(
        COOKIE,
        session_value(token, int(time.time()) + lifetime),
        max_age=lifetime,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.admin_secure_cookie,
    )
    raise response


async def _logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def review_filter(request: web.Request, now: datetime) -> TurnFilter:
    """The review filter the query string asks for; raise QueryError on a bad value."""
    since, until, tier, rating = (_text(request, n) for n in ("since", "until", "tier", "rating"))
    if tier is not None and _NUMBER.fullmatch(tier) is None:
        raise QueryError(f"tier must be a number, not {tier!r}")
    if rating is not None and rating not in RATINGS:
        raise QueryError(f"rating must be one of {', '.join(RATINGS)}")
    return TurnFilter(
        since=None if since is None else parse_when(since, now),
        until=None if until is None else parse_when(until, now),
        channel=_text(request, "channel"),
        tier=None if tier is None else int(tier),
        reason=_text(request, "reason"),
        rating=next((r for r in RATINGS if r == rating), None),
        misroute=_text(request, "misroute") is not None,
    )


async def _review(request: web.Request) -> web.Response:
    values = {k: v for k, v in request.query.items() if isinstance(v, str)}
    try:
        flt = review_filter(request, datetime.now(UTC))
        lines = await review_turns(request.app[STORE], flt, limit=REVIEW_LIMIT)
    except QueryError as exc:
        return _html(error_page("Review", str(exc)), status=400)
    except StoreError as exc:
        return _html(error_page("Review", str(exc)), status=503)
    return _html(review_page(values, lines))


async def _turn(request: web.Request) -> web.Response:
    try:
        view = await open_feedback_turn(request.app[STORE], request.match_info["turn_id"])
    except TurnNotFound as exc:
        return _html(error_page("Turn", str(exc)), status=404)
    except StoreError as exc:
        return _html(error_page("Turn", str(exc)), status=503)
    return _html(conversation_page(view))


async def _report(request: web.Request) -> web.Response:
    period = {"since": request.query.get("since", "7d"), "until": request.query.get("until", "")}
    now = datetime.now(UTC)
    try:
        since = parse_when(period["since"], now) if period["since"].strip() else None
        until = parse_when(period["until"], now) if period["until"].strip() else None
        report = await build_report(request.app[STORE], since=since, until=until)
    except QueryError as exc:
        return _html(error_page("Report", str(exc)), status=400)
    except StoreError as exc:
        return _html(error_page("Report", str(exc)), status=503)
    return _html(report_page(period, report))
