"""The staff web workspace in a real browser at 1280x900 (headless Debian chromium, Playwright):
the housing clerk opens /dashboard/staff, signs in on the way, and works the case card sent to
their workspace (accept, a progress note with a photo, the result with a photo), then signs out.
`shuoshi run`'s server runs in-process on loopback with a ManualClock (see test_browser.py).
"""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.web.dashboard.users import add_user
from storage.queries import case_view
from storage.rows import PersonRow
from tests.conftest import ROOT
from tests.support.browser import (
    PASSWORD,
    ChatPage,
    browser_page,
    no_script_ran,
    playwright_or_skip,
    running_server,
)
from tests.support.images import jpeg
from tests.support.webchat import chat_text
from workflow.commands import ActorRef, AssignCase, PassUp, SubmitCase, ValidateCase
from workflow.model import Role

playwright_api = playwright_or_skip()
expect = playwright_api.expect

ARTIFACTS = ROOT / "tests" / "artifacts"


async def assigned_to_housing(app, clock) -> str:
    """A resident's report with a photo, screened, passed up and assigned to housing."""
    async with app.sessions() as session:
        ids = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
        photo = await app.media.save_photo(session, jpeg("red"), now=clock.now())
        await session.commit()
    number = await app.workflow.submit(app.uow(), SubmitCase(
        actor=ActorRef(ids["P-R-01"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="楼道井盖破损", attachment_ids=(photo.id,),
    ))  # fmt: skip
    for cmd in (
        ValidateCase(case_number=number, actor=ActorRef(ids["P-L-01"], Role.GRID_LEADER)),
        PassUp(case_number=number, actor=ActorRef(ids["P-T-01"], Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=number, actor=ActorRef(ids["P-C-01"], Role.COUNTY_DISPATCHER),
                   department_code="housing"),
    ):  # fmt: skip
        await app.workflow.handle(app.uow(), cmd)
    return number


async def test_a_clerk_works_a_card_in_the_workspace_in_chromium(workdir, clock):
    async with running_server(workdir, clock, user="leader") as (app, server):
        assert server.login
        async with app.uow() as uow:  # what `shuoshi user add clerk --person P-H-02` does
            await add_user(uow.accounts, "clerk", PASSWORD, now=clock.now(), person_code="P-H-02")
            await uow.commit()
        number = await assigned_to_housing(app, clock)
        base = server.url
        async with browser_page() as page:
            chat = ChatPage(page, base)
            await page.goto(base + "dashboard/staff")
            await expect(page).to_have_url(
                re.compile(r"/dashboard/login\?next=%2Fdashboard%2Fstaff$")
            )
            await page.get_by_test_id("login-username").fill("clerk")
            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()
            await expect(page).to_have_url(base + "dashboard/staff")
            await expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
            await expect(page.get_by_test_id("chat-owner")).to_contain_text("罗斌")
            await expect(page.get_by_test_id("switch-person")).to_have_count(0)
            # On a phone, in the longer English, the header still fits on one line.
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.get_by_test_id("lang-en").click()
            await expect(page.get_by_test_id("staff-logout")).to_be_in_viewport()
            await expect(page.get_by_test_id("lang-zh_CN")).to_be_in_viewport(ratio=1)
            await expect(page.get_by_test_id("lang-en")).to_be_in_viewport(ratio=1)
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
            await page.get_by_test_id("lang-zh_CN").click()
            await page.set_viewport_size({"width": 1280, "height": 900})
            await expect(page.get_by_test_id("staff-dashboard")).to_be_visible()

            # The card is waiting, its photo loaded, its buttons in view.
            card = page.locator(f'[data-testid="message"][data-case="{number}"]').last
            await expect(card.get_by_test_id("message-photo")).to_have_js_property("complete", True)
            await expect(chat.button(f"a:ac:{number}")).to_be_in_viewport()
            await chat.press(f"a:ac:{number}")
            await chat.sees(chat_text("done", action="accept", number=number))
            await expect(chat.button(f"a:nt:{number}")).to_be_in_viewport()

            await chat.press(f"a:nt:{number}")
            await chat.sees(chat_text("ask_note", number=number))
            await chat.upload("site.jpg", "blue")
            await chat.sees(chat_text("done", action="note", number=number))

            await chat.press(f"a:rs:{number}")
            await chat.type("已更换新井盖")
            await chat.sees("照片 0 张")
            await chat.upload("fixed.jpg", "green")
            await chat.sees("照片 1 张")
            await expect(chat.button(f"rz:{number}:ok")).to_be_in_viewport()
            await chat.press(f"rz:{number}:ok")
            await chat.sees(chat_text("done", action="resolve", number=number))
            await chat.idle()
            await no_script_ran(page)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "staff_workspace.png"))

            await page.get_by_test_id("staff-logout").click()
            await expect(page).to_have_url(base + "dashboard/login")
            await page.goto(base + "dashboard/staff")
            await expect(page.get_by_test_id("login-form")).to_be_visible()
        async with app.sessions() as session:
            view = await case_view(session, number)
        assert view.case.state.value == "resolved"
        assert [t.action for t in view.timeline][-3:] == ["accept", "note", "resolve"]
