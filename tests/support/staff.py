"""The staff web workspace served as `shuoshi run` serves it behind a https public_url: the web
chat in production mode (/r), the dashboard with its login and the workspace at /dashboard/staff,
on a real App (SQLite and PostgreSQL). The client's cookie jar treats the test server as the
https origin the proxy would be, so Secure cookies flow as in a browser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.web.chat.app import WebChat, setup_webchat
from bot.web.chat.render import plain_text
from bot.web.chat.staff import setup_staff_desk
from bot.web.dashboard.app import setup_dashboard
from bot.web.dashboard.users import add_user
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from tests.support.images import jpeg
from tests.support.webchat import NUMBER, Browser, chat_text, make_app

PUBLIC = "https://shuoshi.county.example"
ORIGIN = {"Origin": PUBLIC}
PASSWORD = "housing-desk-4417"
GRID = "JL-XGC-01-G1"


@dataclass
class Desk:
    app: App
    chat: WebChat
    server: TestServer

    def client(self) -> TestClient:
        """A fresh browser: its own cookies, https as far as cookies go."""
        jar = CookieJar(unsafe=True, treat_as_secure_origin=[self.server.make_url("/")])
        return TestClient(self.server, cookie_jar=jar)

    async def account(self, username: str, person: str | None = None) -> None:
        async with self.app.uow() as uow:
            await add_user(uow.accounts, username, PASSWORD, now=self.app.clock.now(),
                           person_code=person)  # fmt: skip
            await uow.commit()

    async def bind_group(self, chat_id: str, department: str) -> None:
        """A Telegram group of the department (its clerk at a desk is not in it)."""
        async with self.app.sessions() as session:
            invite = await create_invite(
                session, purpose="bind_chat", chat_purpose="department",
                department_code=department, now=self.app.clock.now(),
            )  # fmt: skip
            await SqlChannelStore(session).redeem_invite(
                invite.code, "telegram", "1", "someone", chat_id, self.app.clock.now()
            )
            await session.commit()


async def login(client: TestClient, username: str, *, next_path: str = "/dashboard") -> Any:
    page = await client.get("/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    form = {"csrf": token, "username": username, "password": PASSWORD, "next": next_path}
    return await client.post("/dashboard/login", data=form, headers=ORIGIN, allow_redirects=False)


async def open_desk(client: TestClient, username: str) -> Browser:
    """Sign in and open the workspace, as the clerk does from the dashboard's "My cards"."""
    response = await login(client, username, next_path="/dashboard/staff")
    assert response.status == 303 and response.headers["Location"] == "/dashboard/staff"
    assert response.cookies["shuoshi_session"]["secure"]
    b = Browser(client)
    await b.open("/dashboard/staff")
    return b


async def report(b: Browser, description: str) -> str:
    """A resident's report through /r with a grid's QR code: a photo, an address, no phone."""
    await b.start(grid=GRID)
    await b.key()  # 📝 我要说事
    await b.press("cat:", label="安全隐患")
    await b.say(description)
    await b.upload(("manhole.jpg", jpeg("red"), "image/jpeg"))
    await b.press("ph:")
    await b.say("东门口往北二十米")
    await b.press("ct:", label=chat_text("btn_no_phone"))
    out = await b.press("cf:", label=chat_text("btn_submit"))
    return NUMBER.search(plain_text(out[0]["nodes"])).group(0)


@pytest.fixture
async def desk(engine, tmp_path, clock):
    """The production web server behind https://shuoshi.county.example, on loopback."""
    # Telegram delivered: the desk's tests bind Telegram groups and chats beside the workspace.
    app = await make_app(engine, tmp_path, clock, telegram=True)
    web_settings = app.settings.web
    web_settings.host, web_settings.public_url = "127.0.0.1", PUBLIC
    web_app = web.Application()
    chat = setup_webchat(web_app, app, demo=False)
    setup_dashboard(web_app, app, require_login=True)
    setup_staff_desk(web_app, chat, require_login=True)
    server = TestServer(web_app)
    await server.start_server()
    try:
        yield Desk(app, chat, server)
    finally:
        await server.close()
