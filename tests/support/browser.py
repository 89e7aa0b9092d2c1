"""Web chat pages as a person uses them in Playwright (shared by the browser tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, open_app
from bot.config import load_settings
from bot.runner import Running, serve
from bot.web.dashboard.users import add_user
from storage.org_file import load_org_file
from tests.conftest import EXAMPLE_COUNTY
from tests.support.images import jpeg
from tests.support.net import free_port
from workflow.clock import ManualClock

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 10_000  # per wait; a step that never shows fails instead of hanging
PASSWORD = "grid-screen-2026"  # the dashboard account running_server(user=...) creates


def playwright_or_skip() -> Any:
    """playwright.async_api, or skip the calling test module (with the reason printed) on a
    machine without Debian's chromium or the playwright package."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
            allow_module_level=True,
        )
    return pytest.importorskip(
        "playwright.async_api",
        reason="browser tests need the playwright package (pip install -e '.[dev]')",
    )


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions, imported when used: a machine without playwright
    skips the browser tests instead of failing to import this module."""
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def no_script_ran(page: Any) -> None:
    """The report's <script> and onerror never ran on this page."""
    assert await page.evaluate("() => typeof window.__xss") == "undefined", page.url


class ChatPage:
    """The web chat as a person uses it: buttons under messages, the text box, the picker."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base

    def bot_said(self, text: str) -> Any:
        """The newest bot message containing `text`."""
        return (
            self.page.locator('[data-testid="message"][data-direction="out"]')
            .filter(has_text=text)
            .last
        )

    async def sees(self, text: str) -> Any:
        """Wait until the bot has said `text` on this page; the message, to look inside."""
        message = self.bot_said(text)
        await expect(message).to_be_visible()
        return message

    def button(self, data: str) -> Any:
        return self.page.locator(f'[data-testid="inline-button"][data-callback="{data}"]').last

    async def press(self, data: str) -> None:
        await self.button(data).click()

    async def press_draft(self, flow: str, choice: str) -> None:
        """A button of the resident's draft, "<flow>:<draft id>:<choice>" (ids vary per draft)."""
        await self.page.locator(
            f'[data-testid="inline-button"][data-callback^="{flow}:"][data-callback$=":{choice}"]'
        ).last.click()

    async def type(self, text: str) -> None:
        await self.page.get_by_test_id("text-input").fill(text)
        await self.page.get_by_test_id("send-button").click()

    async def upload(self, name: str, color: str) -> None:
        """A photo through the file box, as a person picks one from the phone's gallery:
        choosing it sends it."""
        await self.page.get_by_test_id("photo-input").set_input_files(
            files=[{"name": name, "mimeType": "image/jpeg", "buffer": jpeg(color)}]
        )
        await self.idle()

    async def idle(self) -> None:
        """Every post of the page answered and drawn (the script counts them on <html>)."""
        await expect(self.page.locator("html")).to_have_attribute("data-pending", "0")

    async def act_as(self, code: str) -> None:
        """Switch person through the demo's picker, as someone playing the loop does."""
        await self.page.get_by_test_id("switch-person").click()
        await expect(self.page.get_by_test_id("picker")).to_be_visible()
        await no_script_ran(self.page)
        await self.page.locator(f'[data-testid="pick-person"][data-person="{code}"]').click()
        await expect(self.page).to_have_url(f"{self.base}chat/p-{code}")
        await expect(self.page.get_by_test_id("live-status")).to_have_attribute(
            "data-state", "live"
        )
        await no_script_ran(self.page)


@asynccontextmanager
async def running_server(
    tmp_path: Path, clock: ManualClock, *, user: str | None = None
) -> AsyncIterator[tuple[App, Running]]:
    """`shuoshi run`'s server on a free loopback port; stopped and closed whatever happens."""
    settings = load_settings(
        data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY,
        web={"port": free_port()}, locale="zh_CN",
    )  # fmt: skip
    app = await open_app(settings, clock)
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        await load_org_file(app.sessions, EXAMPLE_COUNTY)
        if user is not None:
            # What `shuoshi user add` does; an account makes even a loopback dashboard ask.
            async with app.uow() as uow:
                await add_user(uow.accounts, user, PASSWORD, now=clock.now(), display_name="县领导")
                await uow.commit()
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(app, stop, on_ready=ready.set_result))
        await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped the server before it was ready
        assert ready.done(), "the server did not start within 30 s"
        yield app, ready.result()
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await app.close()


@asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    """One headless chromium page; page errors (uncaught script exceptions) fail the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = await browser.new_context(
                locale="zh-CN", viewport={"width": 1280, "height": 900}
            )
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == [], f"script errors on the pages: {errors}"
        finally:
            await browser.close()
