"""What the dashboard and the web chat may believe about where a request came from.

Behind a reverse proxy every connection comes from the proxy: the client's address, the scheme
it used and the host it asked for arrive as X-Forwarded-For/-Proto/-Host. Anyone can send those
headers, so they count only with `[web] trust_proxy = true`, for a process that the proxy alone
can reach (which overwrites or appends them; the last value is the one it added). Otherwise the
socket peer is the client and the request's own Host header is the host.

`[web] public_url`, when set, is the site's origin: a browser's Origin must name it, and when
it is https every cookie is Secure and every response carries HSTS.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from bot.config import WebSettings

SETTINGS: web.AppKey[WebSettings] = web.AppKey("web_trust_settings", WebSettings)
# A year; not includeSubDomains: other sites of the same domain are not ours to pin to https.
HSTS = "max-age=31536000"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def install(web_app: web.Application, settings: WebSettings) -> None:
    """Make the settings known to this module's checks, and send HSTS when public_url is https
    (on every response of the application, streamed ones and static files too)."""
    if SETTINGS in web_app:
        return  # the dashboard and the web chat share one application
    web_app[SETTINGS] = settings

    async def add_hsts(request: web.Request, response: web.StreamResponse) -> None:
        if _is_https_url(settings.public_url):
            response.headers.setdefault("Strict-Transport-Security", HSTS)

    web_app.on_response_prepare.append(add_hsts)


def settings_of(request: web.Request) -> WebSettings:
    """The installed settings; an application without them trusts no proxy and has no public_url."""
    return request.config_dict.get(SETTINGS) or WebSettings()


def forwarded(request: web.Request, name: str) -> str | None:
    """The value our proxy put in a forwarded header, or None unless proxies are trusted."""
    if not settings_of(request).trust_proxy:
        return None
    value = request.headers.get(name, "").rsplit(",", 1)[-1].strip()
    return value or None


def is_https(request: web.Request) -> bool:
    """Whether the browser speaks https to us: a https public_url, TLS on this very socket, or a
    trusted proxy saying so."""
    if _is_https_url(settings_of(request).public_url) or request.secure:
        return True
    return (forwarded(request, "X-Forwarded-Proto") or "").lower() == "https"


def client_address(request: web.Request) -> str:
    """The client's IP address: the socket peer, or what a trusted proxy saw as its peer."""
    claimed = forwarded(request, "X-Forwarded-For")
    if claimed is not None:
        try:
            return str(ipaddress.ip_address(claimed.strip("[]")))
        except ValueError:
            pass  # not an address: the proxy is misconfigured, fall back to its own
    return request.remote or ""


def names_this_site(request: web.Request, origin: str) -> bool:
    """Whether a browser's Origin header names this site: public_url's origin when it is set,
    else the host the request was sent to (a trusted proxy's X-Forwarded-Host, or Host)."""
    public_url = settings_of(request).public_url
    if public_url:
        return _origin(origin) == _origin(public_url)
    host = forwarded(request, "X-Forwarded-Host") or request.host
    return urlsplit(origin).netloc.lower() == host.lower()


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int | None,
    secure: bool = False,
) -> None:
    """HttpOnly, SameSite=Lax, and Secure whenever the browser speaks https to us (or `secure`)."""
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="Lax",
        secure=secure or is_https(request),
    )  # fmt: skip


def _is_https_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.lower() == "https"


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port filled in; None for no origin."""
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    return (scheme, host, port) if scheme and host else None
