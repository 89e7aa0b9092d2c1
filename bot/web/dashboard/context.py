"""What every dashboard page shares: paths, cookies, headers, the signed-in user, rendering."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.app import App
from bot.config import WebSettings
from bot.web import trust as web_trust
from bot.web.dashboard.cache import TtlCache
from bot.web.dashboard.throttle import LoginThrottle
from bot.web.dashboard.users import SignedIn, session_user
from handlers.render import LOCALES, Renderer

PREFIX = "/dashboard"
STATIC_DIR = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "shuoshi_session"
CSRF_COOKIE = "shuoshi_csrf"
LANG_COOKIE = "shuoshi_lang"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# Scripts are never needed: charts are inline SVG, sorting is done by links. Forbidding them is a
# second wall should any report text ever slip past the templates' escaping.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Per-request values the guard sets for pages (typed keys where aiohttp has them, 3.13+).
_Key: Any = getattr(web, "RequestKey", None)
CSRF_KEY: Any = _Key("dashboard_csrf", str) if _Key else "dashboard_csrf"
USER_KEY: Any = _Key("dashboard_user", object) if _Key else "dashboard_user"
View = Callable[["Dashboard", web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can reach the server."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def login_required(settings: WebSettings, users_exist: bool) -> bool:
    """Off the loopback interface a login is always required. On loopback the dashboard is a
    local demo without login until the first account exists (`shuoshi user add`); from then on
    it asks for one there too, so creating an account is all it takes to lock it."""
    return not is_loopback(settings.host) or users_exist


async def current_user(dash: Dashboard, request: web.Request) -> SignedIn | None:
    """The account behind the session cookie, if it is valid now."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with dash.app.uow() as uow:
        return await session_user(uow.accounts, token, dash.app.clock.now())


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def login_redirect(request: web.Request) -> web.Response:
    """To the login form, coming back to the page asked for afterwards."""
    return redirect(f"{PREFIX}/login?" + urlencode({"next": request.path_qs}))


class Dashboard:
    """Per-server state: the app, whether logins are needed, the totals cache, the throttle."""

    def __init__(self, app: App, *, require_login: bool) -> None:
        self.app = app
        self.require_login = require_login
        self.secure_cookies = not is_loopback(app.settings.web.host)
        web_settings = app.settings.web
        self.session_lifetime = timedelta(hours=web_settings.dashboard_session_hours)
        self.cache = TtlCache(app.clock, timedelta(seconds=web_settings.dashboard_cache_seconds))
        self.throttle = LoginThrottle(app.clock)

    def locale(self, request: web.Request) -> str:
        chosen = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
        return chosen if chosen in LOCALES else self.app.settings.locale

    def renderer(self, request: web.Request) -> Renderer:
        return Renderer(self.locale(request))

    def render(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        """A page from templates/web/ in the request's language, with what every frame needs."""
        renderer = self.renderer(request)
        html = renderer.render(
            f"web/{template}",
            locale=renderer.locale,
            user=request.get(USER_KEY),
            csrf=request.get(CSRF_KEY, ""),
            demo=not self.require_login,
            path=request.path,
            prefix=PREFIX,
            **context,
        )
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def message(self, request: web.Request, status: int, macro: str, **params: Any) -> web.Response:
        """An error page with one localized sentence (bad filter, unknown case, refused form)."""
        renderer = self.renderer(request)
        parts = renderer.env.get_template("web/dashboard_parts.html.j2")
        # The macro's own output is already escaped markup: kept as such, not escaped twice.
        text = getattr(parts.module, macro)(**params)
        return self.render(request, "dashboard_message.html.j2", status=status, text=text)

    def guard(self, handler: Handler, *, public: bool = False) -> Handler:
        """Every dashboard route: CSRF cookie, language, headers, and the login check."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            new_csrf = None
            request[CSRF_KEY] = request.cookies.get(CSRF_COOKIE, "")
            if len(request[CSRF_KEY]) < 32:
                new_csrf = request[CSRF_KEY] = secrets.token_urlsafe(32)
            if not public and self.require_login:
                user = await current_user(self, request)
                if user is None:
                    response: web.StreamResponse = login_redirect(request)
                    self._finish(request, response, new_csrf)
                    return response
                request[USER_KEY] = user
            response = await handler(request)
            self._finish(request, response, new_csrf)
            return response

        return wrapped

    def _finish(
        self, request: web.Request, response: web.StreamResponse, new_csrf: str | None
    ) -> None:
        if response.prepared:
            return  # a streamed export set its headers before the first byte
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        if new_csrf is not None:
            self.set_cookie(request, response, CSRF_COOKIE, new_csrf)
        lang = request.query.get("lang")
        if lang in LOCALES:
            self.set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 86400)

    def set_cookie(
        self,
        request: web.Request,
        response: web.StreamResponse,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
    ) -> None:
        """HttpOnly, SameSite=Lax, limited to /dashboard; Secure over https (as the web chat's)
        and whenever the server is not bound to loopback."""
        web_trust.set_cookie(
            request, response, name, value, path=PREFIX, max_age=max_age,
            secure=self.secure_cookies,
        )  # fmt: skip

    @staticmethod
    def stream_headers() -> dict[str, str]:
        """Headers of a streamed response, which cannot be changed after it starts."""
        return {**SECURITY_HEADERS, "Cache-Control": "no-store"}
