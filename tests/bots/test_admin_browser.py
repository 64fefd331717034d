"""The admin pages in a real browser (the system Chromium, driven by Playwright), used the way
an operator would: log in, filter the review, open a misrouted turn, read the report.

Chromium must be installed at /usr/bin/chromium (Debian's `chromium` package); this test never
installs anything and fails, rather than skips, when the browser is missing or cannot start.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Error, Page, async_playwright, expect

from tests.bots.admin_support import MISROUTED, TIER_MIX, TOKEN, admin_app, feedback_settings, seed

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).parents[1] / "artifacts" / "admin.png"
TIMEOUT_MS = 5_000

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def admin_url(tmp_path: Path) -> AsyncIterator[str]:
    """The admin app over a seeded SQLite log, on 127.0.0.1 and a free port."""
    await seed(feedback_settings(tmp_path))
    runner = web.AppRunner(admin_app(tmp_path))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=ARGS, headless=True, timeout=15_000
            )
        except Error as exc:
            pytest.fail(f"cannot launch {CHROMIUM}: {exc.message.splitlines()[0]}")
        try:
            yield launched
        finally:
            await launched.close()


async def log_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/admin/login")
    await page.get_by_label("Admin token").fill(TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/admin/review")


async def test_operator_walks_through_the_admin_pages(browser: Browser, admin_url: str) -> None:
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    await log_in(page, admin_url)
    rows = page.locator("tr.turn-row")
    await expect(rows).to_have_count(sum(TIER_MIX.values()))

    await page.get_by_label("Tier").fill("1")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r"tier=1"))
    await expect(rows).to_have_count(TIER_MIX[1])
    await expect(page.locator("td.tier")).to_have_text(["1"] * TIER_MIX[1])

    misrouted = rows.filter(has=page.locator("td.misroute", has_text="rephrase"))
    await expect(misrouted).to_have_count(1)
    await misrouted.get_by_role("link").click()
    await page.wait_for_url(f"{admin_url}/admin/turn/{MISROUTED}")
    conversation = page.locator("#conversation")
    await expect(conversation.locator(".turn.current")).to_contain_text("rotate my API keys")
    await expect(conversation).to_contain_text("explain properly how to rotate keys")
    await expect(page.locator("#events")).to_contain_text("misroute rephrase")

    await page.get_by_role("link", name="Report").click()
    await page.wait_for_url(f"{admin_url}/admin/report")
    chart = page.locator("svg#tier-mix")
    await expect(chart).to_be_visible()
    total = sum(TIER_MIX.values())
    for tier, n in TIER_MIX.items():
        await expect(chart).to_contain_text(f"{n} ({n / total:.0%})")
        await expect(chart).to_contain_text(f"tier {tier}")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
