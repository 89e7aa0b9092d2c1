"""The resident's loop on a phone (390x844) and on a desktop (1280x900), in Debian's chromium.

At each step of the resident's report, and when they open their chat's link fresh to rate, the
buttons the bot offers (under its last message, the reply keyboard, the phone box) must be
inside the viewport and not covered: the element at the centre of each is the button itself
(document.elementFromPoint), so the sticky dock never hides them. The phone plays the steps
as new messages arrive; a desktop page opens the same chat fresh at each step. The result
photo is held back by the test server (an asyncio.Event, no sleep) while the rating buttons
are checked, then let through and checked again. One browser for the whole module.

Screenshots of each phone step go to tests/artifacts/phone/ (docs/img/ holds the README's).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import App, open_app
from bot.config import load_settings
from bot.web.chat.app import setup_webchat
from storage.org_file import load_org_file
from tests.conftest import EXAMPLE_COUNTY, ROOT
from tests.support.browser import CHROMIUM, ChatPage, playwright_or_skip
from tests.support.images import jpeg
from tests.support.net import free_port
from tests.support.webchat import NUMBER, chat_text
from workflow.clock import ManualClock

playwright_api = playwright_or_skip()
expect = playwright_api.expect
expect.set_options(timeout=10_000)

SHOTS = ROOT / "tests" / "artifacts" / "phone"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
GRID = "JL-XGC-01-G1"

# The buttons the bot offers now, and for each one that is out of view or covered, why.
OFFERED = """() => {
  const offered = [];
  const bots = document.querySelectorAll('#messages > [data-direction="out"]');
  const last = bots[bots.length - 1];
  if (last) offered.push(...last.querySelectorAll(".inline-button"));
  offered.push(...document.querySelectorAll(
    "#keyboard button, #phone-form:not([hidden]) input[name=phone], "
    + "#phone-form:not([hidden]) button"
  ));
  const problems = [];
  for (const b of offered) {
    const r = b.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const inside = r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
    if (!inside || !hit || !(hit === b || b.contains(hit))) {
      const cover = hit ? hit.outerHTML.slice(0, 60) : "nothing";
      const why = inside ? "covered by " + cover : "outside";
      problems.push(`${b.textContent || b.name} at ${Math.round(r.top)}-${Math.round(r.bottom)}`
        + ` of ${innerHeight}: ${why}`);
    }
  }
  return { count: offered.length, problems };
}"""


class Gate:
    """Holds requests whose path matches until opened: the test server's slow network."""

    def __init__(self) -> None:
        self.photos = asyncio.Event()
        self.sends = asyncio.Event()
        self.photos.set()
        self.sends.set()
        self.held_sends = 0
        self.no_send_held = asyncio.Event()
        self.no_send_held.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if "/photo/" in request.path:
            await self.photos.wait()
        elif request.path.endswith("/send") and request.content_type.startswith("multipart/"):
            # A browser that cancels the upload closes the connection; the server (run with
            # handler_cancellation) then cancels this wait: the photo never arrived.
            self.held_sends += 1
            self.no_send_held.clear()
            try:
                await self.sends.wait()
            finally:
                self.held_sends -= 1
                if not self.held_sends:
                    self.no_send_held.set()
        return await handler(request)


@asynccontextmanager
async def chat_server(tmp_path: Path, clock: ManualClock, gate: Gate) -> AsyncIterator[str]:
    """The demo web chat on a free loopback port, behind the gate; its base URL."""
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY, web={"port": port},
        locale="zh_CN",
    )  # fmt: skip
    app: App = await open_app(settings, clock)
    runner: web.AppRunner | None = None
    delivering: asyncio.Task[None] | None = None
    try:
        await load_org_file(app.sessions, EXAMPLE_COUNTY)
        web_app = web.Application(middlewares=[gate.middleware])
        chat = setup_webchat(web_app, app, demo=True)
        runner = web.AppRunner(web_app, shutdown_timeout=2, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        delivering = asyncio.create_task(chat.run())
        yield f"http://127.0.0.1:{port}/"
    finally:
        gate.photos.set()
        gate.sends.set()
        if delivering is not None:
            delivering.cancel()
            await asyncio.gather(delivering, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        await app.close()


async def offered_in_view(page: Any, at_least: int = 1) -> None:
    """Every button the bot offers is in the viewport and uncovered (waits for it like an
    expect(), then fails with the reasons)."""
    check = (
        f"() => {{ const r = ({OFFERED})(); return r.count >= {at_least} && !r.problems.length; }}"
    )
    try:
        await page.wait_for_function(check, timeout=5_000)
    except playwright_api.Error:
        found = await page.evaluate(OFFERED)
        raise AssertionError(f"{page.viewport_size}: {found}") from None


async def photos_loaded(images: Any) -> None:
    await expect(images.last).to_have_js_property("complete", True)
    widths = await images.evaluate_all("all => all.map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths), widths


async def test_the_residents_loop_keeps_every_prompt_in_view(tmp_path, clock):
    gate = Gate()
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with chat_server(tmp_path, clock, gate) as base:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                await the_loop(browser, base, gate)
            finally:
                await browser.close()


async def new_page(browser: Any, device: dict[str, Any], errors: list[str]) -> Any:
    context = await browser.new_context(locale="zh-CN", **device)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


async def the_loop(browser: Any, base: str, gate: Gate) -> None:
    errors: list[str] = []
    phone = await new_page(browser, PHONE, errors)
    desktop = await new_page(browser, DESKTOP, errors)
    me = ChatPage(phone, base)
    shots = iter(range(1, 100))

    async def step(
        name: str, at_least: int = 1, also: Callable[[Any], Awaitable[None]] | None = None
    ) -> None:
        """The phone shows the offered buttons; so does the desktop opening the chat fresh."""
        await me.idle()
        await offered_in_view(phone, at_least)
        await phone.screenshot(path=str(SHOTS / f"{next(shots):02d}-{name}.png"))
        await desktop.goto(phone.url.split("#")[0])
        if also is not None:
            await also(desktop)
        await offered_in_view(desktop, at_least)

    # A resident scans the grid's QR code: /r?grid=..., then "report a problem".
    await phone.goto(base + f"r?grid={GRID}")
    await phone.get_by_test_id("start-chat").click()
    await expect(phone).to_have_url(re.compile(r"/chat/r-[A-Za-z0-9_-]{20,}$"))
    resident_url = phone.url
    await me.sees("已登记到 西郭城村第一网格")
    # The header is one line at 390 px: every part of it on the same row, nothing wrapped.
    tops = await phone.locator(".topbar > *").evaluate_all(
        "all => all.map(e => e.getBoundingClientRect()).map(r => Math.round(r.top + r.height / 2))"
    )
    assert max(tops) - min(tops) <= 4, tops
    assert (await phone.locator(".topbar").bounding_box())["height"] <= 48
    assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 390
    await expect(phone.get_by_test_id("camera-button")).to_be_visible()  # a phone: the camera
    assert await phone.get_by_test_id("camera-input").get_attribute("capture") == "environment"
    await step("start", at_least=2)
    await expect(desktop.get_by_test_id("camera-button")).to_be_hidden()  # no camera on a desktop

    await phone.locator('[data-testid="keyboard-button"][data-text="📝 我要说事"]').click()
    await me.sees(chat_text("ask_category"))
    await step("category", at_least=7)
    await me.press_draft("cat", "safety")
    await me.sees(chat_text("ask_description"))
    await expect(phone.get_by_test_id("text-input")).to_have_attribute(
        "placeholder", "描述一下问题……"
    )
    await me.type("小区东门口的井盖破损，晚上很危险")
    await me.sees("请发送现场照片")
    await expect(phone.get_by_test_id("text-input")).to_have_attribute(
        "placeholder", "用 📷 添加照片，或输入文字……"
    )

    # Choosing a photo sends it: first one cancelled while on its way (the preview shows)...
    gate.sends.clear()
    await phone.get_by_test_id("camera-input").set_input_files(
        files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": jpeg("blue")}]
    )
    pending = phone.get_by_test_id("pending-upload")
    await expect(pending).to_be_visible()
    await photos_loaded(pending.locator("img"))  # the preview, from the phone itself
    await phone.get_by_test_id("cancel-upload").click()
    await expect(pending).to_have_count(0)
    await expect(phone.get_by_test_id("notice")).to_have_text("照片未发送。")
    # Let uploads through only once the server has seen the cancelled one's connection go.
    await asyncio.wait_for(gate.no_send_held.wait(), 10)
    gate.sends.set()
    await me.idle()
    # ...then one sent: it shows as a thumbnail that loads, and a tap enlarges it.
    await me.upload("manhole.jpg", "red")
    await me.sees(chat_text("photo_received", count=1, limit=9))
    own = phone.locator(
        '[data-testid="message"][data-direction="in"] [data-testid="message-photo"]'
    )
    await expect(own).to_have_count(1)
    await photos_loaded(own)
    await step("photo")
    await own.last.click()
    viewer = phone.get_by_test_id("photo-viewer")
    await expect(viewer).to_be_visible()
    await photos_loaded(viewer.locator("img"))
    await phone.get_by_test_id("viewer-close").click()
    await expect(viewer).to_be_hidden()

    await me.press_draft("ph", "done")
    await me.sees(chat_text("ask_location"))
    await expect(phone.get_by_test_id("share-location")).to_be_visible()
    await step("location", at_least=2)
    await me.type("东门口往北二十米")
    await me.sees(chat_text("ask_contact"))

    async def open_phone_box(page: Any) -> None:
        await page.get_by_test_id("share-phone").click()
        await expect(page.get_by_test_id("phone-input")).to_be_visible()

    await step("contact", at_least=2)
    await open_phone_box(phone)
    await step("phone-box", at_least=4, also=open_phone_box)
    await phone.get_by_test_id("phone-input").fill("13800138000")
    await phone.get_by_test_id("phone-send").click()
    await me.sees("联系方式：13800138000")
    await step("confirm", at_least=2)
    await me.press_draft("cf", "ok")
    receipt = await me.sees("已受理，案件编号")
    number = NUMBER.search(await receipt.inner_text()).group(0)
    await step("receipt", at_least=2)

    await the_departments_work(ChatPage(desktop, base), number)

    # The resident opens the link fresh (a WeChat template message's link) while the result
    # photo is slow: the rating buttons are in view before it arrives and after.
    # New browsers (as from a template message's link): the open pages have the result photo
    # in their caches already (the staff's summary, the resident's live stream).
    fresh = await new_page(browser, DESKTOP, errors)
    phone = await new_page(browser, PHONE, errors)
    me = ChatPage(phone, base)
    for page in (fresh, phone):
        gate.photos.clear()
        await page.goto(resident_url, wait_until="domcontentloaded")
        result = ChatPage(page, base).bot_said(f"{number} 已办结：已更换新井盖")
        await expect(result.get_by_test_id("inline-button")).to_have_count(3)
        photo = result.get_by_test_id("message-photo")
        assert await photo.evaluate("img => img.complete && img.naturalWidth > 0") is False
        await offered_in_view(page, at_least=3)
        if page is phone:
            await phone.screenshot(path=str(SHOTS / f"{next(shots):02d}-rate.png"))
        gate.photos.set()
        await photos_loaded(photo)
        await offered_in_view(page, at_least=3)
    await me.press(f"ra:{number}:s")
    await me.sees("您选择了“满意”")
    await me.idle()
    await offered_in_view(phone, at_least=1)
    await phone.screenshot(path=str(SHOTS / f"{next(shots):02d}-comment.png"))
    await me.press(f"rk:{number}")
    await me.sees(chat_text("thanks_for_rating", number=number))
    await me.idle()
    await phone.screenshot(path=str(SHOTS / f"{next(shots):02d}-thanks.png"))
    assert errors == [], f"script errors on the pages: {errors}"


async def the_departments_work(staff: ChatPage, number: str) -> None:
    """Screening, passing up, assigning, accepting and resolving with a photo (demo picker)."""
    page = staff.page
    await page.goto(staff.base + "chat")
    await page.locator('[data-testid="pick-person"][data-person="P-L-01"]').click()
    await staff.press(f"a:sv:{number}")
    await staff.sees(chat_text("done", action="screen_valid", number=number))
    for code, data in (("P-T-01", "a:pu"), ("P-C-01", "as:housing"), ("P-H-02", "a:ac")):
        await staff.act_as(code)
        await staff.press(f"{data}:{number}")
        await staff.idle()
    await staff.press(f"a:rs:{number}")
    await staff.sees(f"请回复这条消息，写明 {number} 的办理结果")
    await expect(page.get_by_test_id("text-input")).to_have_attribute(
        "placeholder", "写明办理结果……"
    )
    await staff.type("已更换新井盖")
    await staff.sees("照片 0 张")
    await staff.upload("fixed.jpg", "green")
    await staff.sees("照片 1 张")
    await staff.press(f"rz:{number}:ok")
    await staff.sees(chat_text("done", action="resolve", number=number))
    await staff.idle()
