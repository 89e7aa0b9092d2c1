"""Behind a proxy or not: Secure cookies, HSTS, and which forwarded headers are believed, for the
dashboard and the web chat alike (bot/web/trust.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, open_app
from bot.config import Settings
from bot.web.chat.app import setup_webchat
from bot.web.trust import HSTS
from storage.org_file import load_org_file
from tests.conftest import EXAMPLE_COUNTY
from tests.support.dashboard import PASSWORD, Site, csrf_of

PUBLIC = "https://shuoshi.example.org"


def behind_proxy(site: Site, *, public_url: str | None = None, trust_proxy: bool = False) -> None:
    """Listening on loopback (where the proxy forwards to), as the README's deployment does."""
    web_settings = site.app.settings.web
    web_settings.host, web_settings.public_url = "127.0.0.1", public_url
    web_settings.trust_proxy = trust_proxy


async def post_login(client: TestClient, headers: dict[str, str] | None = None) -> Any:
    token = await csrf_of(client)
    return await client.post(
        "/dashboard/login",
        data={"csrf": token, "username": "leader", "password": PASSWORD},
        headers={"Cookie": f"shuoshi_csrf={token}", **(headers or {})},
        allow_redirects=False,
    )


# -- dashboard --------------------------------------------------------------------------------


async def test_dashboard_cookies_are_secure_and_hsts_sent_behind_a_https_public_url(site: Site):
    behind_proxy(site, public_url=PUBLIC)
    await site.user()
    async with site.client() as client:
        form = await client.get("/dashboard/login")
        assert form.cookies["shuoshi_csrf"]["secure"]
        assert form.headers["Strict-Transport-Security"] == HSTS
        response = await post_login(client, {"Origin": PUBLIC})
        assert response.status == 303 and response.cookies["shuoshi_session"]["secure"]
        assert response.headers["Strict-Transport-Security"] == HSTS
        static = await client.get("/dashboard/static/dashboard.css")
        assert static.status == 200 and static.headers["Strict-Transport-Security"] == HSTS


async def test_dashboard_believes_x_forwarded_proto_only_from_a_trusted_proxy(site: Site):
    await site.user()
    https = {"X-Forwarded-Proto": "https"}
    behind_proxy(site)  # not told to trust a proxy: anyone could have sent the header
    async with site.client() as client:
        response = await post_login(client, https)
        assert response.status == 303 and not response.cookies["shuoshi_session"]["secure"]
        assert "Strict-Transport-Security" not in response.headers  # no https public_url
    behind_proxy(site, trust_proxy=True)
    async with site.client() as client:
        response = await post_login(client, https)
        assert response.status == 303 and response.cookies["shuoshi_session"]["secure"]
        response = await post_login(client, {"X-Forwarded-Proto": "http"})
        assert response.status == 303 and not response.cookies["shuoshi_session"]["secure"]


async def test_dashboard_origin_is_public_urls_when_set(site: Site):
    behind_proxy(site, public_url=PUBLIC)
    await site.user()
    async with site.client() as client:
        own_host = f"http://{client.host}:{client.port}"  # the internal address
        for origin in (own_host, "https://evil.example", "http://shuoshi.example.org", "null"):
            response = await post_login(client, {"Origin": origin})
            assert response.status == 403, origin
        assert (await post_login(client, {"Origin": PUBLIC + ":443"})).status == 303
        assert (await post_login(client, {"Origin": "HTTPS://Shuoshi.Example.org"})).status == 303


async def test_dashboard_origin_follows_x_forwarded_host_only_from_a_trusted_proxy(site: Site):
    await site.user()
    behind_proxy(site)
    async with site.client() as client:
        spoofed = {"Origin": "https://evil.example", "X-Forwarded-Host": "evil.example"}
        assert (await post_login(client, spoofed)).status == 403
        own = {"Origin": f"http://{client.host}:{client.port}"}
        assert (await post_login(client, own)).status == 303
    behind_proxy(site, trust_proxy=True)
    proxied = {"Origin": PUBLIC, "X-Forwarded-Host": "shuoshi.example.org"}
    async with site.client() as client:
        assert (
            await post_login(client, {**proxied, "Origin": "https://evil.example"})
        ).status == 403
        assert (await post_login(client, proxied)).status == 303


# -- web chat ---------------------------------------------------------------------------------


async def webchat(tmp_path, clock, **web_settings: Any) -> AsyncIterator[tuple[TestClient, App]]:
    app = await open_app(Settings(data_dir=tmp_path / "data", web=web_settings), clock)
    await load_org_file(app.sessions, EXAMPLE_COUNTY)
    web_app = web.Application()
    setup_webchat(web_app, app, demo=False)
    try:
        async with TestClient(TestServer(web_app)) as client:
            yield client, app
    finally:
        await app.close()


@pytest.fixture
async def chat_direct(tmp_path, clock, monkeypatch):
    """Production web chat reached directly (no proxy configured)."""
    monkeypatch.delenv("SHUOSHI_LOCALE", raising=False)
    async for found in webchat(tmp_path, clock):
        yield found


@pytest.fixture
async def chat_public(tmp_path, clock, monkeypatch):
    """Production web chat behind a trusted proxy at a https public_url."""
    monkeypatch.delenv("SHUOSHI_LOCALE", raising=False)
    async for found in webchat(tmp_path, clock, public_url=PUBLIC, trust_proxy=True):
        yield found


async def start_chat(client: TestClient, headers: dict[str, str]) -> Any:
    """POST /r with a new browser's right token, as the start page's form does."""
    client.session.cookie_jar.clear()
    page = await client.get("/r")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', await page.text()).group(1)
    browser = page.cookies["shuoshi_browser"].value
    return await client.post(
        "/r", data={"csrf": token, "grid": ""}, allow_redirects=False,
        headers={"Cookie": f"shuoshi_browser={browser}", **headers},
    )  # fmt: skip


async def test_webchat_ignores_forwarded_headers_without_a_trusted_proxy(chat_direct):
    client, _ = chat_direct
    spoofed = {"Origin": "http://evil.example", "X-Forwarded-Host": "evil.example"}
    assert (await start_chat(client, spoofed)).status == 403
    client.session.cookie_jar.clear()
    page = await client.get("/r", headers={"X-Forwarded-Proto": "https"})
    assert not page.cookies["shuoshi_browser"]["secure"]
    assert "Strict-Transport-Security" not in page.headers
    own = {"Origin": f"http://{client.host}:{client.port}"}
    assert (await start_chat(client, own)).status == 303


async def test_webchat_behind_a_https_public_url(chat_public):
    client, _ = chat_public
    page = await client.get("/r")
    assert page.cookies["shuoshi_browser"]["secure"]
    assert page.headers["Strict-Transport-Security"] == HSTS
    static = await client.get("/static/webchat/chat.css")
    assert static.headers["Strict-Transport-Security"] == HSTS
    # public_url's origin is the one to name, whatever X-Forwarded-Host says
    for origin, host in ((f"http://{client.host}:{client.port}", None),
                         ("https://evil.example", "evil.example")):  # fmt: skip
        headers = {"Origin": origin, **({"X-Forwarded-Host": host} if host else {})}
        assert (await start_chat(client, headers)).status == 403, origin
    response = await start_chat(client, {"Origin": PUBLIC})
    assert response.status == 303 and response.cookies["shuoshi_chat"]["secure"]
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_public_url_must_be_an_origin():
    from bot.config import ConfigError, load_settings

    assert load_settings(web={"public_url": PUBLIC, "trust_proxy": True}).web.trust_proxy
    for bad in ("shuoshi.example.org", "ftp://shuoshi.example.org", "https://"):
        with pytest.raises(ConfigError, match=r"web\.public_url: must be an http"):
            load_settings(web={"public_url": bad})
