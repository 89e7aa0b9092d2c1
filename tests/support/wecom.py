"""The WeCom app of `shuoshi run` against the fake WeCom API, on a manual clock; with the
Official Account beside it on the same app, so a resident's report can reach staff in WeCom.

The county is the example one with WeCom UserIDs for the people of the first township's
loop (grid leader, township, county center, housing): `STAFF`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import App, open_app
from bot.config import load_settings
from bot.wechat.channel import PATH as WECHAT_PATH
from bot.wechat.channel import WeChatChannel
from bot.wecom.channel import PATH, WeComChannel
from storage.org_file import load_org_file
from tests.fake_wechat import APP_ID, APP_SECRET, Callbacks, FakeWeChat
from tests.fake_wechat.callbacks import AES_KEY as WX_AES_KEY
from tests.fake_wechat.callbacks import TOKEN as WX_TOKEN
from tests.fake_wechat.wecom import (
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    SECRET,
    TOKEN,
    FakeWeCom,
    WeComCallbacks,
)
from tests.support.net import free_port
from tests.support.paths import EXAMPLE_COUNTY
from tests.support.wechat import PUBLIC_URL, WeChatEnv
from workflow.clock import SHANGHAI, ManualClock

# Person code -> WeCom UserID, added to the example county for these tests.
STAFF = {"P-L-01": "MaJianGuo", "P-T-01": "GuoZhiGang", "P-C-01": "GaoWenJie", "P-H-02": "LuoBin",
         "P-S-01": "HanBing"}  # fmt: skip

# A complete [wecom] section, for tests of the settings alone.
SETTINGS = {"corp_id": "ww0123456789abcdef", "agent_id": 1000002, "secret": "s3cr3t-value",
            "token": "tok", "encoding_aes_key": "A" * 43}  # fmt: skip


def county_with_wecom(tmp_path: Path, ids: dict[str, str]) -> Path:
    """The example county with `wecom_userid` on the given people (one line each)."""
    text = EXAMPLE_COUNTY.read_text(encoding="utf-8")
    for code, userid in ids.items():
        flow = f"{{code: {code}, "
        if flow in text:  # a one-line entry
            text = text.replace(flow, f"{{code: {code}, wecom_userid: {userid}, ", 1)
        else:
            text = text.replace(
                f"  - code: {code}\n", f"  - code: {code}\n    wecom_userid: {userid}\n", 1
            )
    path = tmp_path / "county.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class WeComEnv:
    app: App
    channel: WeComChannel
    fake: FakeWeCom
    cb: WeComCallbacks
    clock: ManualClock
    url: str
    wx: WeChatEnv
    county: Path

    async def settle(self) -> None:
        """Handle every stored callback of both channels and deliver what they queued."""
        assert await self.channel.lease.renew()
        for _ in range(8):
            await self.wx.settle()
            handled = await self.channel.processor.process_pending()
            sent = await self.channel.sender.deliver_pending()
            if not handled and not sent:
                await self.wx.settle()
                return


async def make_env(
    tmp_path: Path,
    database_url: str | None = None,
    *,
    staff: dict[str, str] | None = None,
    **wecom: Any,
) -> AsyncIterator[WeComEnv]:
    """`staff`: person code -> WeCom UserID (default `STAFF`)."""
    clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
    staff = staff or STAFF
    county = county_with_wecom(tmp_path, staff)
    async with FakeWeChat(clock.now) as wx_fake, FakeWeCom(clock.now, set(staff.values())) as fake:
        settings = load_settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            example_county=county,
            # Behind a public address, with template messages: news outside the 48-hour
            # window links to the resident's web chat.
            web={"port": free_port(), "public_url": PUBLIC_URL},
            wechat={"app_id": APP_ID, "app_secret": APP_SECRET, "token": WX_TOKEN,
                    "encoding_aes_key": WX_AES_KEY, "api_base": wx_fake.base_url,
                    "result_template_id": "TPL-RESULT", "rating_template_id": "TPL-RATING"},
            wecom={"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": TOKEN,
                   "encoding_aes_key": AES_KEY, "api_base": fake.base_url, **wecom},
        )  # fmt: skip
        app = await open_app(settings, clock)
        await load_org_file(app.sessions, county)
        channel, wechat = WeComChannel(app), WeChatChannel(app)
        web_app = web.Application()
        channel.register(web_app)
        wechat.register(web_app)
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.web.port).start()
        assert await channel.lease.renew() and await wechat.lease.renew()
        base = f"http://127.0.0.1:{settings.web.port}"
        tick = lambda: clock.advance(seconds=1)  # noqa: E731
        cb = WeComCallbacks(fake, base + PATH, tick=tick)
        wx_cb = Callbacks(wx_fake, base + WECHAT_PATH, tick=tick)
        wx = WeChatEnv(app, wechat, wx_fake, wx_cb, clock, base + WECHAT_PATH)
        try:
            yield WeComEnv(app, channel, fake, cb, clock, base + PATH, wx, county)
        finally:
            await cb.close()
            await wx_cb.close()
            await runner.cleanup()
            await channel.close()
            await wechat.close()
            await app.close()


@pytest.fixture
async def wc(tmp_path: Path) -> AsyncIterator[WeComEnv]:
    async for env in make_env(tmp_path):
        yield env


@pytest.fixture
async def wc_pg(tmp_path: Path) -> AsyncIterator[WeComEnv]:
    """The same on PostgreSQL: a database of its own, dropped afterwards."""
    from tests.conftest import PG_SKIP_REASON, PG_URL

    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    import asyncpg

    name = f"wecom_{uuid.uuid4().hex[:12]}"
    admin_url = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
        async for env in make_env(tmp_path, url):
            yield env
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
