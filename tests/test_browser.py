"""The whole loop in a real browser: headless Debian chromium driven by Playwright.

`shuoshi run`'s server (bot.runner.serve: web chat, dashboard, senders, sweep) runs in-process
on 127.0.0.1 with a ManualClock, so every step happens at the same instant and nothing falls
due while the test plays. One page plays every person through the demo's role picker: the
resident reports (with an XSS attempt in the text and an uploaded photo), the grid leader
screens, the township passes up, the county assigns housing, housing accepts, notes progress by
replying to the card and resolves, the resident rates; then the dashboard shows the closed case
and housing's rates. A second test checks the dashboard's login once an account exists.

Playwright uses the system's chromium only (never a downloaded browser); without it, or without
the playwright package, the tests are skipped with the reason (`pytest -rs` prints it).
Screenshots of the dashboard are saved under tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import ROOT
from tests.support.browser import (
    PASSWORD,
    TIMEOUT_MS,
    ChatPage,
    browser_page,
    no_script_ran,
    playwright_or_skip,
    running_server,
)
from tests.support.webchat import NUMBER, chat_text

playwright_api = playwright_or_skip()
async_playwright = playwright_api.async_playwright
expect = playwright_api.expect

ARTIFACTS = ROOT / "tests" / "artifacts"
XSS = '井盖破损 <script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
GRID = "JL-XGC-01-G1"
expect.set_options(timeout=TIMEOUT_MS)  # auto-waiting assertions wait as long as actions do


async def test_the_whole_loop_in_chromium_then_the_dashboard(workdir, clock):
    async with running_server(workdir, clock) as (app, server):
        assert server.demo and not server.login
        base = server.url
        async with browser_page() as page:
            chat = ChatPage(page, base)
            number = await play_the_loop(chat)
            await check_the_dashboard(page, base, number)


async def play_the_loop(chat: ChatPage) -> str:
    """Scenario 1 of the Telegram issue, in the web chat; returns the case number."""
    page = chat.page
    # A new resident of the grid, chosen from the picker's list of grids.
    await page.goto(chat.base + "chat")
    await expect(page.get_by_test_id("demo-notice")).to_be_visible()
    await no_script_ran(page)
    await page.get_by_test_id("pick-grid").select_option(GRID)
    await page.get_by_test_id("pick-new-resident").click()
    await expect(page).to_have_url(re.compile(r"/chat/r-[A-Za-z0-9_-]{20,}$"))
    resident_url = page.url
    await expect(page.get_by_test_id("bookmark-notice")).to_be_visible()
    await chat.sees("已登记到 西郭城村第一网格")

    # Report: menu key, category, description, a photo, an address, the phone, confirm.
    await page.locator('[data-testid="keyboard-button"][data-text="📝 我要说事"]').click()
    await chat.sees(chat_text("ask_category"))
    await chat.press_draft("cat", "safety")
    await chat.sees(chat_text("ask_description"))
    await chat.type(XSS)
    await chat.sees("请发送现场照片")
    mine = page.locator('[data-testid="message"][data-direction="in"] [data-testid="message-text"]')
    await expect(mine.filter(has_text="<script>window.__xss=1</script>")).to_be_visible()
    await chat.upload("manhole.jpg", "red")
    await chat.sees(chat_text("photo_received", count=1, limit=9))
    # The resident's own photo shows as a thumbnail that loads (their chat may fetch it).
    own = page.locator('[data-testid="message"][data-direction="in"] [data-testid="message-photo"]')
    await expect(own.last).to_have_js_property("complete", True)
    assert await own.last.evaluate("img => img.naturalWidth") == 64
    await chat.press_draft("ph", "done")
    await chat.sees(chat_text("ask_location"))
    await expect(page.get_by_test_id("share-location")).to_be_visible()
    await chat.type("东门口往北二十米")
    await chat.sees(chat_text("ask_contact"))
    await page.get_by_test_id("share-phone").click()
    await page.get_by_test_id("phone-input").fill("13800138000")
    await page.get_by_test_id("phone-send").click()
    await expect(
        page.get_by_test_id("message-phone").filter(has_text="13800138000")
    ).to_be_visible()
    summary = await chat.sees("联系方式：13800138000")
    await expect(summary).to_contain_text("<script>")  # the draft's summary shows it as text
    await chat.press_draft("cf", "ok")
    receipt = await chat.sees("已受理，案件编号")
    found = NUMBER.search(await receipt.inner_text())
    assert found, await receipt.inner_text()
    number = found.group(0)
    await no_script_ran(page)

    # The grid leader's card waits in their chat, with the photo and the text as text.
    await chat.act_as("P-L-01")
    card = page.locator(f'[data-testid="message"][data-case="{number}"]').filter(
        has=chat.button(f"a:sv:{number}")
    )
    await expect(card.get_by_test_id("message-photo")).to_be_visible()
    await expect(card.get_by_test_id("message-text")).to_contain_text("<script>window.__xss=1")
    await expect(card.get_by_test_id("message-text")).to_contain_text('onerror="window.__xss=2"')
    await chat.press(f"a:sv:{number}")
    await chat.sees(chat_text("done", action="screen_valid", number=number))
    # The card changed in place: the township holds the case now, and no button is left on it.
    await expect(chat.button(f"a:sv:{number}")).to_have_count(0)
    await expect(
        page.locator(f'[data-testid="message"][data-case="{number}"]').first
    ).to_contain_text(f"{number} · 安全隐患 · 乡镇(街道)中心")

    await chat.act_as("P-T-01")
    await chat.press(f"a:pu:{number}")
    await chat.sees(chat_text("done", action="pass_up", number=number))

    await chat.act_as("P-C-01")
    await expect(chat.button(f"as:housing:{number}")).to_be_visible()
    await chat.press(f"as:housing:{number}")
    await chat.sees(chat_text("done", action="assign", number=number))

    # Housing: accept, a progress note as a reply to the card, then the result with a photo.
    await chat.act_as("P-H-02")
    await chat.press(f"a:ac:{number}")
    await chat.sees(chat_text("done", action="accept", number=number))
    card = (
        page.locator(f'[data-testid="message"][data-case="{number}"]')
        .filter(has=chat.button(f"a:rs:{number}"))
        .last
    )
    await card.get_by_test_id("reply-button").click()
    await expect(page.get_by_test_id("replying-to")).to_be_visible()
    await expect(page.get_by_test_id("replying-text")).to_contain_text(number)
    await chat.type("已派人到现场，明早更换")
    await chat.sees(chat_text("done", action="note", number=number))
    await expect(page.get_by_test_id("replying-to")).to_be_hidden()
    quoted = page.locator('[data-testid="message"][data-direction="in"]').filter(
        has_text="已派人到现场"
    )
    await expect(quoted.get_by_test_id("message-quote")).to_be_visible()

    await chat.press(f"a:rs:{number}")
    await chat.sees(f"请回复这条消息，写明 {number} 的办理结果")
    await chat.type("已更换新井盖")
    await chat.sees("照片 0 张")
    await chat.upload("fixed.jpg", "green")
    await chat.sees("照片 1 张")
    await chat.press(f"rz:{number}:ok")
    await chat.sees(chat_text("done", action="resolve", number=number))
    await chat.idle()

    # The resident, back on their bookmarked address: every step's news, then the rating.
    await page.goto(resident_url)
    await no_script_ran(page)
    await chat.sees(f"您反映的 {number} 已通过网格长初筛")
    await chat.sees(f"您反映的 {number} 超出乡镇办理权限，已流转至县级中心")
    await chat.sees(f"您反映的 {number} 已派给 住房和城乡建设局 办理")
    await chat.sees(f"{number} 已被签收")
    await chat.sees(f"{number} 办理进展：已派人到现场，明早更换")
    result = await chat.sees(f"{number} 已办结：已更换新井盖")
    await expect(result.get_by_test_id("message-photo")).to_be_visible()
    await chat.press(f"ra:{number}:s")
    await chat.sees("您选择了“满意”")
    await chat.press(f"rk:{number}")
    await chat.sees(chat_text("thanks_for_rating", number=number))
    await chat.idle()
    await expect(mine.filter(has_text="<script>window.__xss=1</script>")).to_be_visible()
    await no_script_ran(page)
    return number


async def check_the_dashboard(page: Any, base: str, number: str) -> None:
    """The closed case with its whole timeline, and housing's rates at 100 %."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.goto(base + "dashboard")
    await expect(page.get_by_test_id("demo-banner")).to_be_visible()  # no account: local demo
    await no_script_ran(page)
    await expect(page.get_by_test_id("kpi-new")).to_have_text("1")
    await expect(page.get_by_test_id("kpi-open")).to_have_text("0")
    housing = page.get_by_test_id("rate-row-department-housing")
    await expect(housing.get_by_test_id("unit-name")).to_have_text("住房和城乡建设局")
    await expect(housing.get_by_test_id("cases")).to_have_text("1")
    for rate in ("reply-rate", "closure-rate", "on-time-rate", "satisfaction-rate"):
        await expect(housing.get_by_test_id(rate)).to_have_text("100.0%")
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    await page.get_by_test_id("nav").get_by_role("link", name="案件").click()
    await expect(page).to_have_url(re.compile(r"/dashboard/cases$"))
    await no_script_ran(page)
    row = page.get_by_test_id(f"case-row-{number}")
    await expect(row.get_by_test_id("state")).to_have_text("已结案")
    await expect(row.get_by_test_id("description")).to_contain_text("<script>window.__xss=1")
    await row.get_by_test_id("case-link").click()

    await expect(page).to_have_url(re.compile(rf"/dashboard/cases/{number}$"))
    await no_script_ran(page)
    await expect(page.get_by_test_id("case-state")).to_have_text("已结案")
    await expect(page.get_by_test_id("case-description")).to_have_text(XSS)
    await expect(page.get_by_test_id("responsible-unit")).to_have_text("住房和城乡建设局")
    await expect(page.get_by_test_id("rating")).to_contain_text("满意")
    await expect(page.get_by_test_id("contact")).to_contain_text("13800138000")
    await expect(page.get_by_test_id("photos-before").locator("img")).to_have_count(1)
    await expect(page.get_by_test_id("photos-after").locator("img")).to_have_count(1)
    timeline = page.get_by_test_id("case-timeline").locator("li > strong")
    await expect(timeline).to_have_text(
        ["上报", "流转", "初筛有效", "上报上级", "派单", "签收", "进展反馈", "办结", "评价"]
    )
    await expect(page.get_by_test_id("case-timeline")).to_contain_text("已派人到现场，明早更换")
    # The photos load through the signed-in route (a broken image has naturalWidth 0).
    widths = (
        await page.get_by_test_id("photos-before")
        .locator("img")
        .evaluate_all(
            "images => Promise.all(images.map(i => i.decode().then(() => i.naturalWidth)))"
        )
    )
    assert widths == [64]
    await page.screenshot(path=str(ARTIFACTS / "case.png"), full_page=True)


async def test_the_dashboard_asks_for_a_login_once_an_account_exists(workdir, clock):
    """On 127.0.0.1 the dashboard is an open demo until `shuoshi user add` creates an account;
    with one, it redirects to the login form, refuses a wrong password and lets the right in."""
    async with running_server(workdir, clock, user="leader") as (app, server):
        assert server.login
        base = server.url
        async with browser_page() as page:
            await page.goto(base + "dashboard/cases")
            await expect(page).to_have_url(
                re.compile(r"/dashboard/login\?next=%2Fdashboard%2Fcases$")
            )
            await expect(page.get_by_test_id("login-form")).to_be_visible()
            await no_script_ran(page)
            await expect(page.get_by_test_id("demo-banner")).to_have_count(0)
            await expect(page.get_by_test_id("case-list")).to_have_count(0)

            await page.get_by_test_id("login-username").fill("leader")
            await page.get_by_test_id("login-password").fill(PASSWORD + "x")
            async with page.expect_response(re.compile(r"/dashboard/login$")) as answer:
                await page.get_by_test_id("login-submit").click()
            assert (await answer.value).status == 401
            await expect(page.get_by_test_id("login-error")).to_have_text("用户名或密码错误。")
            await expect(page.get_by_test_id("signed-in")).to_have_count(0)
            await expect(page.get_by_test_id("login-username")).to_have_value("leader")

            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()
            await expect(page).to_have_url(re.compile(r"/dashboard/cases$"))
            await expect(page.get_by_test_id("signed-in")).to_have_text("县领导")
            await expect(page.get_by_test_id("case-list")).to_be_visible()
            await expect(page.get_by_test_id("demo-banner")).to_have_count(0)

            # Signing out ends the session: the dashboard asks again.
            await page.get_by_test_id("logout").click()
            await expect(page.get_by_test_id("login-form")).to_be_visible()
            await page.goto(base + "dashboard")
            await expect(page).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard$"))
