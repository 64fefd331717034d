"""Our listeners' access log: the path without its query string, which may carry a credential."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.bots.admin_support import admin_app
from tests.bots.conftest import Serve

QUERY = "hub.mode=subscribe&hub.verify_token=query-secret-7e1f&hub.challenge=5"


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def _access_lines(url: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        assert await _get(f"{url}/healthz?{QUERY}") == 200
    return [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]


async def test_the_public_app_logs_the_path_without_the_query(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    served = await serve(offline=True)
    lines = await _access_lines(served.url, caplog)
    assert [line.split('"')[1] for line in lines] == ["GET /healthz HTTP/1.1"]
    assert lines[0].split('"')[2].split()[0] == "200"
    assert "query-secret" not in lines[0]


async def test_the_admin_app_logs_the_path_without_the_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = TestServer(admin_app(tmp_path), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        lines = await _access_lines(str(server.make_url("")).rstrip("/"), caplog)
    finally:
        await server.close()
    assert [line.split('"')[1] for line in lines] == ["GET /healthz HTTP/1.1"]
    assert "query-secret" not in lines[0]


async def test_an_app_without_it_would_log_the_query(caplog: pytest.LogCaptureFixture) -> None:
    """The default line, for contrast: what the class prevents."""
    app = web.Application()
    app.router.add_get("/healthz", _ok)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        lines = await _access_lines(str(server.make_url("")).rstrip("/"), caplog)
    finally:
        await server.close()
    assert "query-secret-7e1f" in lines[0]


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")
