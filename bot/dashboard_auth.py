"""Dashboard login: the form, the session cookie, CSRF checks and the failed-login throttle."""

from __future__ import annotations

import hmac
import ipaddress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from bot.dashboard import CSRF_COOKIE, PREFIX, SESSION_COOKIE
from bot.dashboard_users import SignedIn, authenticate, end_session, session_user, start_session
from bot.web_trust import client_address, names_this_site
from workflow.clock import Clock

if TYPE_CHECKING:
    from bot.dashboard import Dashboard

MAX_USERNAME = 64
MAX_PASSWORD = 1024  # scrypt would take anything; a megabyte "password" is only a nuisance


class LoginThrottle:
    """Failed logins counted per (client address, username) and per client address, on the
    injected clock: `per_name` failures of one name from one address within `window` refuse
    that name from that address, and `per_address` failures of any names refuse the address
    (someone trying many names), each until its oldest failure ages out. A name is never
    refused as such, so nobody can lock its owner out from another address. IPv6 clients
    count per /64, the block one subscriber usually holds. In memory: a restart forgets, which
    is acceptable for a form whose passwords are scrypt-hashed and checked against a
    weak-password list."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_name: int = 5,
        per_address: int = 20,
        window: timedelta = timedelta(minutes=15),
        max_keys: int = 10_000,
    ) -> None:
        self.clock = clock
        self.per_name = per_name
        self.per_address = per_address
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[tuple[str, ...], list[datetime]] = {}

    def _keys(self, address: str, username: str) -> dict[tuple[str, ...], int]:
        """The counters one attempt belongs to, with the failures each of them allows."""
        client = client_block(address)
        return {(client, username.lower()): self.per_name, (client,): self.per_address}

    def _recent(self, key: tuple[str, ...]) -> list[datetime]:
        cutoff = self.clock.now() - self.window
        kept = [t for t in self._failures.get(key, []) if t > cutoff]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait(self, address: str, username: str) -> timedelta | None:
        """How long this address must wait before its next attempt at this name, or None."""
        waits = []
        for key, limit in self._keys(address, username).items():
            recent = self._recent(key)
            if len(recent) >= limit:
                waits.append(recent[-limit] + self.window - self.clock.now())
        return max(waits, default=None)

    def failed(self, address: str, username: str) -> None:
        for key in self._keys(address, username):
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))  # bounded: forget the oldest
            self._failures.setdefault(key, []).append(self.clock.now())

    def succeeded(self, address: str, username: str) -> None:
        """The name's failures from this address are forgiven; the address's are not, or one
        valid account would let its holder try other names without end."""
        self._failures.pop((client_block(address), username.lower()), None)


def client_block(address: str) -> str:
    """What one client is counted as: its IPv4 address, or the /64 of its IPv6 address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def current_user(dash: Dashboard, request: web.Request) -> SignedIn | None:
    """The account behind the session cookie, if it is valid now."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with dash.app.sessions() as session:
        return await session_user(session, token, dash.app.clock.now())


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def login_redirect(request: web.Request) -> web.Response:
    """To the login form, coming back to the page asked for afterwards."""
    return redirect(f"{PREFIX}/login?" + urlencode({"next": request.path_qs}))


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
    async with dash.app.sessions() as session:
        user = await authenticate(session, username, password, now)
        if user is None:
            dash.throttle.failed(address, username)
            return again(401, "login_failed")
        token = await start_session(session, user.id, now, dash.session_lifetime)
        await session.commit()
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
        async with dash.app.sessions() as session:
            await end_session(session, token)
            await session.commit()
    response = redirect(f"{PREFIX}/login" if dash.require_login else PREFIX)
    response.del_cookie(SESSION_COOKIE, path=PREFIX)
    return response
