"""The WeChat channel of `shuoshi run` against the fake WeChat API, on a manual clock.

`wechat_env` builds the app (SQLite in tmp_path, the example county), the channel with its
callback route on a loopback port, and the fake; tests post callbacks with `env.cb` and then
call `env.settle()` (the inbox processed, the outbox delivered) instead of waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from bot.app import App, open_app
from bot.config import load_settings
from bot.wechat.channel import PATH, WeChatChannel
from storage.org_file import load_org_file
from tests.fake_wechat import APP_ID, APP_SECRET, Callbacks, FakeWeChat
from tests.fake_wechat.callbacks import AES_KEY, TOKEN
from tests.support.net import free_port
from tests.support.paths import EXAMPLE_COUNTY
from tests.support.webchat import Browser
from workflow.clock import SHANGHAI, ManualClock

PUBLIC_URL = "https://shuoshi.example.org"


@dataclass
class WeChatEnv:
    app: App
    channel: WeChatChannel
    fake: FakeWeChat
    cb: Callbacks
    clock: ManualClock
    url: str

    async def settle(self) -> None:
        """Handle every stored callback and deliver what it queued."""
        # The lease runs on the manual clock too: renewed as the keeper task would.
        assert await self.channel.lease.renew()
        for _ in range(5):
            handled = await self.channel.processor.process_pending()
            sent = await self.channel.sender.deliver_pending()
            if not handled and not sent:
                return


async def make_env(
    tmp_path: Any, *, encrypted: bool = True, public_url: str | None = PUBLIC_URL, **wechat: Any
) -> AsyncIterator[WeChatEnv]:
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
    async with FakeWeChat(clock.now) as fake:
        settings = load_settings(
            data_dir=tmp_path / "data",
            example_county=EXAMPLE_COUNTY,
            web={"port": free_port(), "public_url": public_url},
            wechat={
                "app_id": APP_ID, "app_secret": APP_SECRET, "token": TOKEN,
                "encoding_aes_key": AES_KEY if encrypted else "", "api_base": fake.base_url,
                "result_template_id": "TPL-RESULT", "rating_template_id": "TPL-RATING",
                **wechat,
            },
        )  # fmt: skip
        app = await open_app(settings, clock)
        await load_org_file(app.sessions, EXAMPLE_COUNTY)
        channel = WeChatChannel(app)
        web_app = web.Application()
        channel.register(web_app)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.web.port).start()
        assert await channel.lease.renew()  # this process sends, as the lease holder does
        url = f"http://127.0.0.1:{settings.web.port}{PATH}"
        try:
            cb = Callbacks(fake, url, encrypted=encrypted, tick=lambda: clock.advance(seconds=1))
            yield WeChatEnv(app, channel, fake, cb, clock, url)
        finally:
            await cb.close()
            await runner.cleanup()
            await channel.close()
            await app.close()


@pytest.fixture
async def wx(tmp_path: Any) -> AsyncIterator[WeChatEnv]:
    async for env in make_env(tmp_path):
        yield env


@pytest.fixture
async def wx_plain(tmp_path: Any) -> AsyncIterator[WeChatEnv]:
    async for env in make_env(tmp_path, encrypted=False):
        yield env


async def describe_hazard(env: WeChatEnv, openid: str, text: str) -> None:
    """`openid` follows through grid G1's QR code, starts a report of a safety hazard and
    describes it (not yet settled)."""
    await env.cb.follow(openid, scene="JL-XGC-01-G1")
    await env.cb.click(openid, "report")
    await env.settle()
    await env.cb.choose(openid, "安全隐患")
    await env.settle()
    await env.cb.text(openid, text)


async def report_case(
    env: WeChatEnv, openid: str, *, photo: bytes | None = None,
    location: tuple[float, float] | None = None,
) -> str:  # fmt: skip
    """`openid` follows through grid G1's QR code and reports a safety hazard (with a photo,
    and a location message instead of a typed address, when given); the case number."""
    from bot.wechat.render import plain
    from tests.support.texts import said

    await describe_hazard(env, openid, "井盖丢失")
    if photo is not None:
        await env.cb.image(openid, photo)
    await env.settle()
    await env.cb.choose(openid, plain(said("btn_photos_done")))
    await env.settle()
    if location is not None:
        await env.cb.location(openid, *location, label="东门路口")
    else:
        await env.cb.text(openid, "东门路口")
    await env.settle()
    await env.cb.choose(openid, plain(said("btn_anonymous")))
    await env.settle()
    await env.cb.choose(openid, plain(said("btn_submit")))
    await env.settle()
    async with env.app.uow() as uow:
        person = await uow.channels.person_for("wechat", openid)
        assert person is not None
        cases = await uow.channels.cases_of_reporter(person.id)
    return str(cases[0]["number"])


@contextlib.asynccontextmanager
async def resident_browser(app: App) -> AsyncIterator[Browser]:
    """The resident's browser on the web chat a template message links to: the same app and
    database, served here over plain http (with public_url's https the chat's cookies would be
    Secure, which a test client never sends); the web chat's outbox delivered first."""
    from dataclasses import replace

    from aiohttp.test_utils import TestClient, TestServer

    from bot.web.chat.app import setup_webchat

    local_web = app.settings.web.model_copy(update={"public_url": None})
    local = replace(app, settings=app.settings.model_copy(update={"web": local_web}))
    web_app = web.Application()
    webchat = setup_webchat(web_app, local, demo=False)
    await webchat.deliver_pending()
    async with TestClient(TestServer(web_app)) as client:
        yield Browser(client)


async def staff_resolve(env: WeChatEnv, number: str) -> None:
    """The case goes through screening, the township, the county and housing, and is resolved."""
    from sqlalchemy import select

    from storage.rows import PersonRow
    from workflow.commands import (
        AcceptCase,
        ActorRef,
        AssignCase,
        PassUp,
        ResolveCase,
        ValidateCase,
    )
    from workflow.model import Role

    async with env.app.sessions() as session:
        people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
    handler = ActorRef(people["P-H-02"], Role.DEPARTMENT_HANDLER)
    for cmd in (
        ValidateCase(case_number=number, actor=ActorRef(people["P-L-01"], Role.GRID_LEADER)),
        PassUp(case_number=number, actor=ActorRef(people["P-T-01"], Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=number, actor=ActorRef(people["P-C-01"], Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        AcceptCase(case_number=number, actor=handler),
        ResolveCase(case_number=number, actor=handler, text="已更换井盖"),
    ):  # fmt: skip
        await env.app.workflow.handle(env.app.uow(), cmd)
