"""The staff web workspace (/dashboard/staff) behind a https public_url, on both databases: a
department clerk without Telegram signs in, works the case card in the web chat with the same
buttons and replies as in Telegram, and the resident rates in their /r chat."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import delete, select

from bot.web.chat.app import setup_webchat
from bot.web.chat.render import plain_text
from bot.web.chat.staff import setup_staff_desk
from bot.web.dashboard.app import setup_dashboard
from handlers.render import Renderer
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.queries import case_view
from storage.rows import DepartmentRow, IdentityRow, OutboxRow, PersonRow
from tests.support.images import jpeg
from tests.support.staff import ORIGIN, Desk, login, open_desk, report
from tests.support.webchat import Browser, chat_text, make_app, new_key
from workflow.commands import ActorRef, AssignCase, PassUp, ValidateCase
from workflow.model import Role

CLERK = "p-P-H-02"  # 罗斌, housing's handler: the workspace's chat


async def to_housing(d: Desk, number: str) -> None:
    """The grid leader, the township and the county center move the case on (in Telegram)."""
    async with d.app.sessions() as session:
        ids = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
    wf = d.app.workflow
    for cmd in (
        ValidateCase(case_number=number, actor=ActorRef(ids["P-L-01"], Role.GRID_LEADER)),
        PassUp(case_number=number, actor=ActorRef(ids["P-T-01"], Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=number, actor=ActorRef(ids["P-C-01"], Role.COUNTY_DISPATCHER),
                   department_code="housing"),
    ):  # fmt: skip
        d.app.clock.advance(minutes=20)
        await wf.handle(d.app.uow(), cmd)
    await d.chat.deliver_pending()


def said(views: list[dict]) -> list[str]:
    return [plain_text(v["nodes"]) for v in views]


async def upload(b: Browser, text: str, photo: bytes) -> None:
    form = FormData()
    for name, value in (("csrf", b.config["csrf"]), ("key", new_key()), ("text", text)):
        form.add_field(name, value)
    form.add_field("photo", photo, filename="site.jpg", content_type="image/jpeg")
    response = await b.client.post(
        b.config["urls"]["send"], data=form, headers={"Accept": "application/json", **ORIGIN}
    )
    assert response.status == 200, await response.text()


async def test_a_clerk_works_the_case_in_the_workspace_and_the_resident_rates(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    await desk.bind_group("-1001", "housing")  # the department's Telegram group
    async with desk.client() as resident_client, desk.client() as clerk_client:
        resident = Browser(resident_client)
        number = await report(resident, "楼道井盖破损")
        await to_housing(desk, number)

        # The card reached the group and, since the clerk has no Telegram, the workspace.
        async with desk.app.sessions() as session:
            sent = set(
                (await session.execute(
                    select(OutboxRow.channel, OutboxRow.chat_id)
                    .where(OutboxRow.case_number == number)
                )).all()
            )  # fmt: skip
        assert {("telegram", "-1001"), ("web", CLERK)} <= sent

        clerk = await open_desk(clerk_client, "clerk")
        assert clerk.chat == CLERK and clerk.config["urls"]["send"] == "/dashboard/staff/send"
        assert "罗斌" in clerk.html and 'data-testid="staff-logout"' in clerk.html
        assert 'data-testid="switch-person"' not in clerk.html  # no picker off the demo
        card = next(v for v in await clerk.history() if v["case_number"] == number)
        assert [b["data"] for row in card["buttons"] for b in row] == [
            f"a:ac:{number}", f"a:rn:{number}"
        ]  # fmt: skip
        photo = await clerk_client.get(card["photos"][0])
        assert photo.status == 200 and photo.headers["Content-Type"] == "image/jpeg"

        out = await clerk.press(f"a:ac:{number}")
        assert chat_text("done", action="accept", number=number) in said(out)
        # The accept button of the card is gone (edited in place): pressed again, it expired.
        response = await clerk.post("press", {"message_id": str(card["id"]),
                                              "data": f"a:ac:{number}"})  # fmt: skip
        assert response.status == 200
        last = [v for v in await clerk.history() if v["direction"] == "out"][-1]
        assert plain_text(last["nodes"]) == chat_text("stale_button")

        # A progress note with a photo, from the card's note button.
        await clerk.press(f"a:nt:{number}")
        await upload(clerk, "已派人到现场，明早更换", jpeg("blue"))
        assert chat_text("done", action="note", number=number) in [
            plain_text(v["nodes"]) for v in await clerk.history()
        ]
        # Resolve: the result, a photo of the site, then confirm.
        await clerk.press(f"a:rs:{number}")
        await clerk.say("已更换新井盖")
        await upload(clerk, "", jpeg("green"))
        out = await clerk.press(f"rz:{number}:ok")
        assert chat_text("done", action="resolve", number=number) in said(out)

        # The resident sees the result with its photo, and rates in their own chat.
        await resident.open(f"/chat/{resident.chat}")
        result = next(v for v in reversed(await resident.history()) if v["buttons"])
        assert "已更换新井盖" in plain_text(result["nodes"]) and len(result["photos"]) == 1
        await resident.press(f"ra:{number}:s")
        out = await resident.press(f"rk:{number}")
        assert chat_text("thanks_for_rating", number=number) in said(out)

    async with desk.app.sessions() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating.value == "satisfied"
    assert [t.action for t in view.timeline][-4:] == ["accept", "note", "resolve", "rate"]
    assert len(view.timeline[-3].photos) == 1 and len(view.timeline[-2].photos) == 1


async def test_a_clerk_returns_a_case_with_a_reason(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    async with desk.client() as resident_client, desk.client() as clerk_client:
        number = await report(Browser(resident_client), "违建")
        await to_housing(desk, number)
        clerk = await open_desk(clerk_client, "clerk")
        out = await clerk.press(f"a:rn:{number}")
        assert chat_text("ask_reason", number=number) in said(out)
        await clerk.say("不属于住建部门职责")
    async with desk.app.sessions() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "returned"
    assert view.timeline[-1].action == "return"


# Who may use it ------------------------------------------------------------------------------


async def test_without_a_session_the_workspace_sends_to_the_login(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    async with desk.client() as client:
        page = await client.get("/dashboard/staff", allow_redirects=False)
        assert page.status == 303
        assert page.headers["Location"] == "/dashboard/login?next=%2Fdashboard%2Fstaff"
        for method, path in (("GET", "/history"), ("GET", "/events"), ("POST", "/send"),
                             ("POST", "/press"), ("GET", "/photo/" + "a" * 64)):  # fmt: skip
            response = await client.request(
                method, "/dashboard/staff" + path, data={"text": "x", "key": new_key()},
                headers={"Accept": "application/json", **ORIGIN},
            )  # fmt: skip
            assert response.status == 401, path
            assert (await response.json())["error"] == label("staff_signed_out")
        # An account linked before workspaces existed has no chat yet: its first visit makes it.
        async with desk.app.sessions() as session:
            await session.execute(delete(IdentityRow).where(IdentityRow.external_id == CLERK))
            await session.commit()
        # Signing in comes back to the workspace.
        response = await login(client, "clerk", next_path="/dashboard/staff")
        assert response.headers["Location"] == "/dashboard/staff"
        assert (await client.get("/dashboard/staff")).status == 200
        async with desk.app.sessions() as session:
            chats = (await session.execute(select(IdentityRow.external_id))).scalars().all()
        assert CLERK in chats
    async with desk.app.sessions() as session:
        rows = (await session.execute(select(OutboxRow.chat_id))).scalars().all()
    assert rows == [CLERK]  # the greeting; nothing the anonymous posts said was taken


async def test_an_account_without_a_person_is_told_so(desk: Desk):
    await desk.account("viewer")
    async with desk.client() as client:
        await login(client, "viewer")
        dashboard = await client.get("/dashboard")
        assert 'data-testid="staff-workspace"' not in await dashboard.text()
        page = await client.get("/dashboard/staff")
        assert page.status == 403
        assert label("staff_not_linked") in await page.text()
        response = await client.post(
            "/dashboard/staff/send", headers={"Accept": "application/json"}
        )
        assert response.status == 403


async def test_posts_need_this_sessions_token_from_this_site(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    async with desk.client() as resident_client, desk.client() as client:
        resident = Browser(resident_client)
        await resident.start(grid="JL-XGC-01-G1")
        clerk = await open_desk(client, "clerk")
        assert 'data-testid="staff-workspace"' in await (await client.get("/dashboard")).text()
        before = await clerk.last_id()

        async def send(csrf: str, headers: dict[str, str]) -> int:
            response = await client.post(
                "/dashboard/staff/send", data={"csrf": csrf, "key": new_key(), "text": "hi"},
                headers={"Accept": "application/json", **headers},
            )  # fmt: skip
            return response.status

        assert await send(clerk.config["csrf"], {"Origin": "https://evil.example"}) == 403
        assert await send(clerk.config["csrf"], {"Sec-Fetch-Site": "cross-site"}) == 403
        assert await send("0" * 40, ORIGIN) == 403
        assert await send(resident.config["csrf"], ORIGIN) == 403  # another chat's token
        assert await clerk.last_id() == before  # none of them was taken
        assert await send(clerk.config["csrf"], ORIGIN) == 200

        # A resident's link reaches residents' chats only; the clerk's chat has no address.
        assert (await resident_client.get(f"/chat/{CLERK}")).status == 404
        page = await resident_client.get("/dashboard/staff", allow_redirects=False)
        assert page.status == 303


async def test_signing_out_ends_the_workspace_and_its_stream(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    async with desk.client() as client, desk.client() as other:
        clerk = await open_desk(client, "clerk")
        old_session = client.session.cookie_jar.filter_cookies(desk.server.make_url("/dashboard"))[
            "shuoshi_session"
        ].value
        live = await clerk.stream(after=await clerk.last_id())
        logout = await client.post("/dashboard/logout", data={"csrf": csrf_of(clerk.html)},
                                   headers=ORIGIN, allow_redirects=False)  # fmt: skip
        assert logout.status == 303 and logout.headers["Location"] == "/dashboard/login"
        desk.chat._notify(CLERK)  # the next wake finds the session gone: the stream ends
        with pytest.raises(EOFError):
            await asyncio.wait_for(live.next(), 10)
        response = await clerk.post("send", {"text": "还在吗"})
        assert response.status == 401
        # Signed in again, a page of the earlier session is still refused: its token named it.
        old_page = clerk.config["csrf"]
        fresh = await open_desk(client, "clerk")
        assert fresh.config["csrf"] != old_page
        assert (await clerk.post("send", {"text": "旧页面"})).status == 403
        assert (await fresh.post("send", {"text": "新页面"})).status == 200
        # The old cookie, replayed from elsewhere, opens nothing either.
        response = await other.get(
            "/dashboard/staff", headers={"Cookie": f"shuoshi_session={old_session}"},
            allow_redirects=False,
        )  # fmt: skip
        assert response.status == 303


def label(name: str) -> str:
    return Renderer("zh_CN").macro("web/webchat_labels.j2", name)


def csrf_of(html: str) -> str:
    """The dashboard's token in the workspace's sign-out form."""
    form = re.search(r'class="signout"><input type="hidden" name="csrf" value="([^"]+)"', html)
    assert form, "no sign-out form"
    return form.group(1)


async def test_a_group_reaches_the_desk_of_only_those_without_another_chat(desk: Desk):
    await desk.account("clerk", person="P-H-02")
    await desk.bind_group("-1001", "housing")
    async with desk.app.sessions() as session:
        housing = (
            await session.execute(select(DepartmentRow.id).where(DepartmentRow.code == "housing"))
        ).scalar_one()
        store = SqlChannelStore(session)
        role = Role.DEPARTMENT_HANDLER
        assert await store.desk_chats_with_role(role, department_id=housing) == [
            ("web", CLERK, "zh_CN")
        ]
        # Once the clerk is in Telegram too, the group (or their own chat) reaches them there.
        invite = await create_invite(session, purpose="enrol", person_code="P-H-02",
                                     now=desk.app.clock.now())  # fmt: skip
        await store.redeem_invite(invite.code, "telegram", "4242", "罗斌", "4242",
                                  desk.app.clock.now())  # fmt: skip
        assert await store.desk_chats_with_role(role, department_id=housing) == []
        # Without a group too: the workspace is for those with no other chat account.
        private = await store.private_chats_with_role(role, department_id=housing)
        assert ("telegram", "4242", "zh_CN") in private and ("web", CLERK, "zh_CN") not in private


async def test_a_clerk_also_in_telegram_gets_each_card_once_there(desk: Desk):
    """Housing has no group: its cards go to its handler's own chats. A clerk with a workspace
    who is in Telegram too gets each card in Telegram only, not a second copy at the desk (the
    workspace is for people with no other chat account, as when a group is bound)."""
    await desk.account("clerk", person="P-H-02")
    async with desk.app.sessions() as session:
        invite = await create_invite(session, purpose="enrol", person_code="P-H-02",
                                     now=desk.app.clock.now())  # fmt: skip
        await SqlChannelStore(session).redeem_invite(invite.code, "telegram", "4242", "罗斌",
                                                     "4242", desk.app.clock.now())  # fmt: skip
        await session.commit()
    async with desk.client() as client:
        number = await report(Browser(client), "井盖松动")
    await to_housing(desk, number)
    async with desk.app.sessions() as session:
        rows = await session.execute(
            select(OutboxRow.channel, OutboxRow.chat_id).where(
                OutboxRow.case_number == number,
                OutboxRow.payload["purpose"].as_string() == "case_card",
                OutboxRow.chat_id.in_([CLERK, "4242"]),
            )
        )
        assert rows.all() == [("telegram", "4242")]


async def test_without_any_login_the_workspace_says_how_to_get_one(engine, tmp_path, clock):
    """A loopback demo with no account: the dashboard asks for no login, so nobody can be
    signed in; the page says how to create a linked account (and offers the picker)."""
    app = await make_app(engine, tmp_path, clock)
    web_app = web.Application()
    chat = setup_webchat(web_app, app, demo=True)
    setup_dashboard(web_app, app, require_login=False)
    setup_staff_desk(web_app, chat, require_login=False)
    async with TestClient(TestServer(web_app)) as client:
        page = await client.get("/dashboard/staff", allow_redirects=False)
        assert page.status == 401
        text = await page.text()
        assert label("staff_no_login") in text and 'href="/chat"' in text
