"""Dashboard login: the form, the session cookie, CSRF checks and the failed-login throttle."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from aiohttp import web

from bot.web.dashboard.context import (
    CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    Dashboard,
    current_user,
    redirect,
)
from bot.web.dashboard.users import authenticate, end_session, start_session
from bot.web.trust import client_address, names_this_site

MAX_USERNAME = 64
MAX_PASSWORD = 1024  # scrypt would take anything; a megabyte "password" is only a nuisance


def safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect to another site."""
    if not target or not target.startswith(PREFIX) or target.startswith(("//", "/\\")):
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return PREFIX
    return target


def csrf_ok(request: web.Request, form_token: str) -> bool:
    """The form's token must equal the CSRF cookie (another site can neither read nor set it),
    and a browser that names the page's origin must name this server."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if len(cookie) < 32 or not hmac.compare_digest(cookie.encode(), form_token.encode()):
        return False
    origin = request.headers.get("Origin")
    return origin is None or names_this_site(request, origin)


async def login_page(dash: Dashboard, request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"))
    if not dash.require_login:
        return redirect(target)
    if await current_user(dash, request) is not None:
        return redirect(target)
    return dash.render(request, "dashboard_login.html.j2", next=target, username="", error=None)


async def login_submit(dash: Dashboard, request: web.Request) -> web.Response:
    form = await request.post()
    target = safe_next(str(form.get("next", "")))
    if not csrf_ok(request, str(form.get("csrf", ""))):
        return dash.message(request, 403, "csrf_refused")
    if not dash.require_login:
        return redirect(target)
    username = str(form.get("username", "")).strip()[:MAX_USERNAME]
    password = str(form.get("password", ""))

    def again(status: int, error: str, **params: object) -> web.Response:
        return dash.render(
            request, "dashboard_login.html.j2", status=status, next=target, username=username,
            error=error, error_params=params,
        )  # fmt: skip

    address = client_address(request)
    wait = dash.throttle.wait(address, username)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() + 59) // 60)
        return again(429, "login_throttled", minutes=minutes)
    if not username or not password or len(password) > MAX_PASSWORD:
        dash.throttle.failed(address, username)
        return again(401, "login_failed")
    now = dash.app.clock.now()
    async with dash.app.uow() as uow:
        user = await authenticate(uow.accounts, username, password, now)
        if user is None:
            dash.throttle.failed(address, username)
            return again(401, "login_failed")
        token = await start_session(uow.accounts, user.id, now, dash.session_lifetime)
        await uow.commit()
    dash.throttle.succeeded(address, username)
    response = redirect(target)
    dash.set_cookie(
        request, response, SESSION_COOKIE, token,
        max_age=int(dash.session_lifetime.total_seconds()),
    )  # fmt: skip
    return response


async def logout(dash: Dashboard, request: web.Request) -> web.Response:
    form = await request.post()
    if not csrf_ok(request, str(form.get("csrf", ""))):
        return dash.message(request, 403, "csrf_refused")
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with dash.app.uow() as uow:
            await end_session(uow.accounts, token)
            await uow.commit()
    response = redirect(f"{PREFIX}/login" if dash.require_login else PREFIX)
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response
