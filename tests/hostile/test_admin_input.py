"""Hostile input to the admin listener that schemathesis first answered with a 500: now 400."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from bots.admin import valid_session
from tests.bots.admin_support import TOKEN, admin_app

ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"token=x"),
        ("application/x-www-form-urlencoded", b"token=\xff\xfe"),
    ],
    ids=["multipart-without-boundary", "not-utf-8"],
)
async def test_an_unreadable_login_form_is_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path, content_type: str, body: bytes
) -> None:
    client = await aiohttp_client(admin_app(tmp_path))

    async with client.post(
        "/admin/login", data=body, headers={"Content-Type": content_type}, allow_redirects=False
    ) as response:
        assert response.status == 400
        assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "query",
    [
        "/admin/review?tier=%C2%B2",
        "/admin/review?tier=99999999999999999999",
        "/admin/review?since=99999999999999w",
        "/admin/report?until=9999999999d",
    ],
    ids=["superscript-tier", "tier-beyond-64-bits", "review-span", "report-span"],
)
async def test_a_filter_beyond_what_the_store_holds_is_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path, query: str
) -> None:
    client = await aiohttp_client(admin_app(tmp_path))

    async with client.get(query, headers=ADMIN) as response:
        assert response.status == 400


@pytest.mark.parametrize("expiry", ["²", "١٢٣", "9" * 40], ids=["superscript", "arabic", "huge"])
def test_a_session_cookie_with_an_unreadable_expiry_is_no_session(expiry: str) -> None:
    token = SecretStr(TOKEN)

    assert valid_session(token, f"{expiry}.{'0' * 64}", now=0.0) is False
