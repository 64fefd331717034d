"""The admin listener: token and cookie auth, review, turn and report pages, probes, and the
public app never serving an admin path."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from bots.admin import (
    COOKIE,
    AdminListener,
    create_admin_app,
    mount_admin,
    session_value,
    token_matches,
    valid_session,
)
from bots.admin_settings import load_admin_settings
from bots.metrics import Metrics
from routing.errors import ConfigError
from tests.bots.admin_support import (
    HOSTILE,
    MISROUTED,
    TIER_MIX,
    TOKEN,
    admin_app,
    admin_settings,
    feedback_settings,
    seed,
)
from tests.bots.conftest import Serve

BEARER = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> Client:
    await seed(feedback_settings(tmp_path))
    return await aiohttp_client(admin_app(tmp_path))


async def logged_in(client: Client) -> Client:
    response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303
    return client


def test_no_token_refuses_to_start_and_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TIERBOT_ADMIN_TOKEN"):
        create_admin_app(
            settings=admin_settings(None), feedback=feedback_settings(tmp_path), metrics=Metrics()
        )


def test_short_token_is_refused_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERBOT_ADMIN_TOKEN", "short")
    with pytest.raises(ConfigError, match="TIERBOT_ADMIN_TOKEN"):
        load_admin_settings()


def test_session_cookie_is_bound_to_token_and_expiry() -> None:
    token = SecretStr(TOKEN)
    now = time.time()
    good = session_value(token, int(now) + 60)
    assert valid_session(token, good, now)
    assert not valid_session(SecretStr(TOKEN + "x"), good, now)
    assert not valid_session(token, session_value(token, int(now) - 1), now)
    assert not valid_session(token, good[:-1] + ("0" if good[-1] != "0" else "1"), now)
    assert not valid_session(token, "not-a-cookie", now)
    assert token_matches(token, TOKEN)
    assert not token_matches(token, TOKEN[:-1])


async def test_probes_are_open(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"


@pytest.mark.parametrize("path", ["/admin", "/admin/review", "/admin/report", "/admin/turn/x"])
async def test_pages_redirect_to_login_without_auth(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/admin/login"


async def test_metrics_need_the_bearer_token(client: Client) -> None:
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    response = await client.get("/metrics", headers=BEARER)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "tierbot_queue_dropped_pending_total" in await response.text()


async def test_wrong_login_is_refused(client: Client) -> None:
    response = await client.post("/admin/login", data={"token": "wrong"}, allow_redirects=False)
    assert response.status == 401
    assert "not right" in await response.text()
    assert COOKIE not in response.cookies


async def test_unreadable_login_form_is_a_400(client: Client) -> None:
    response = await client.post(
        "/admin/login",
        data=b"token=x",
        headers={"Content-Type": "multipart/form-data"},
        allow_redirects=False,
    )
    assert response.status == 400
    assert "Could not read the form" in await response.text()


@pytest.mark.parametrize("tier", ["\u00b2", "9" * 30, "-1"])
async def test_review_refuses_a_tier_that_is_no_small_number(client: Client, tier: str) -> None:
    response = await client.get("/admin/review", params={"tier": tier}, headers=BEARER)
    assert response.status == 400
    assert "tier must be a number" in await response.text()


@pytest.mark.parametrize("when", ["99999999w", "0001-01-01T00:00:00+01:00"])
async def test_review_and_report_refuse_a_time_off_the_calendar(client: Client, when: str) -> None:
    for path in ("/admin/review", "/admin/report"):
        response = await client.get(path, params={"since": when}, headers=BEARER)
        assert response.status == 400, path


def test_a_cookie_with_unicode_digits_is_no_session() -> None:
    token = SecretStr(TOKEN)
    assert not valid_session(token, "\u00b2\u00b2." + "0" * 64, time.time())


async def test_login_sets_a_strict_httponly_cookie(client: Client) -> None:
    response = await client.post("/admin/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert TOKEN not in header
    review = await client.get("/admin/review")
    assert review.status == 200
    assert review.headers["Content-Security-Policy"].startswith("default-src 'none'")
    logout = await client.post("/admin/logout", allow_redirects=False)
    assert logout.status == 303
    assert (await client.get("/admin/review", allow_redirects=False)).status == 303


async def test_review_lists_turns_escaped(client: Client) -> None:
    page = await (await client.get("/admin/review", headers=BEARER)).text()
    assert page.count('class="turn-row"') == sum(TIER_MIX.values())
    assert "<script>" not in page
    assert html.escape(HOSTILE[:60], quote=True) in page


async def test_review_filters_by_tier_and_misroute(client: Client) -> None:
    client = await logged_in(client)
    tier1 = await (await client.get("/admin/review", params={"tier": "1"})).text()
    assert re.findall(r'class="num tier">(\d)<', tier1) == ["1"] * TIER_MIX[1]
    misrouted = await (await client.get("/admin/review", params={"misroute": "1"})).text()
    assert misrouted.count('class="turn-row"') == 1
    assert f"/admin/turn/{MISROUTED}" in misrouted
    assert "rephrase" in misrouted
    rated = await (await client.get("/admin/review", params={"rating": "up"})).text()
    assert rated.count('class="turn-row"') == 1
    recent = await (await client.get("/admin/review", params={"since": "1m"})).text()
    assert "No turns match." in recent


@pytest.mark.parametrize(
    ("params", "message"),
    [({"tier": "x"}, "tier must be a number"), ({"since": "yesterday"}, "cannot read time")],
)
async def test_bad_filters_are_400(client: Client, params: dict[str, str], message: str) -> None:
    response = await client.get("/admin/review", params=params, headers=BEARER)
    assert response.status == 400
    assert message in await response.text()


async def test_turn_shows_the_conversation_around_it(client: Client) -> None:
    page = await (await client.get(f"/admin/turn/{MISROUTED}", headers=BEARER)).text()
    assert page.index("hi") < page.index("rotate my API keys") < page.index("without downtime")
    assert "misroute" in page
    assert f'id="turn-{MISROUTED}"' in page
    missing = await client.get("/admin/turn/nope", headers=BEARER)
    assert missing.status == 404


async def test_report_has_svg_charts_with_the_tier_mix(client: Client) -> None:
    page = await (await client.get("/admin/report", headers=BEARER)).text()
    chart = page[page.index('<svg id="tier-mix"') : page.index("</svg>")]
    total = sum(TIER_MIX.values())
    for tier, n in TIER_MIX.items():
        assert f">tier {tier}<" in chart
        assert f">{n} ({n / total:.0%})<" in chart
    assert '<svg id="cost"' in page
    assert '<svg id="latency"' in page
    assert (await client.get("/admin/report?since=bogus", headers=BEARER)).status == 400


@pytest.mark.parametrize("path", ["/admin", "/admin/review", "/admin/report", "/metrics"])
async def test_public_app_serves_no_admin_path(serve: Serve, path: str) -> None:
    served = await serve()
    async with aiohttp.ClientSession() as session, session.get(served.url + path) as response:
        assert response.status == 404


async def test_admin_listener_serves_beside_the_public_app(tmp_path: Path) -> None:
    await seed(feedback_settings(tmp_path))
    public = web.Application()
    public.router.add_get("/healthz", _ok)
    listener = AdminListener(admin_app(tmp_path), host="127.0.0.1", port=0)
    public.cleanup_ctx.append(listener)
    server = TestServer(public, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        host, port = listener.addresses[0][:2]  # type: ignore[index]  # (host, port) of TCP
        async with aiohttp.ClientSession(headers=BEARER) as session:
            for path in ("/admin/review", "/metrics"):
                async with session.get(server.make_url(path)) as response:
                    assert response.status == 404
                async with session.get(f"http://{host}:{port}{path}") as response:
                    assert response.status == 200
    finally:
        await server.close()
    assert listener.addresses


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_mount_admin_keeps_a_worker_listeners_probes_open(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    await seed(feedback_settings(tmp_path))
    worker = web.Application()
    worker.router.add_get("/readyz", _ok)
    mount_admin(
        worker, settings=admin_settings(), feedback=feedback_settings(tmp_path), metrics=Metrics()
    )
    client = await aiohttp_client(worker)
    assert await (await client.get("/readyz")).text() == "ok"
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/admin/review", headers=BEARER)).status == 200
