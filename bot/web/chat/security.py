"""Who may post into a web chat: same-origin requests carrying a token bound to the browser.

Every page sets a random browser cookie; the forms and the script of a page carry
HMAC(secret, cookie | scope), where the scope is the chat (or the picker, or the start form).
Another site can make a browser post to us, but can neither read our pages nor compute the
token, so its posts are refused; the Origin header is checked as well where browsers send it.
A chat's address (r-<random>) is itself the resident's key to the chat: it is never sent to
another site in a Referer header (Referrer-Policy: same-origin) and never listed anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web

from bot.web import trust as web_trust
from bot.web.trust import names_this_site

BROWSER_COOKIE = "shuoshi_browser"
CHAT_COOKIE = "shuoshi_chat"
LANG_COOKIE = "shuoshi_lang"
CSRF_HEADER = "X-CSRF-Token"
SECRET_FILE = "webchat.secret"
YEAR = 365 * 24 * 3600

# No inline script or style at all: strings reach the script as JSON data, not code.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    # Not "no-referrer": with it browsers post forms with "Origin: null" even to ourselves.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else one kept in data_dir so tokens survive a restart."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # Created readable by the owner only; a second process racing here keeps the first key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key.hex())
    return key


class Guard:
    """Issues and checks the per-browser form tokens."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    @staticmethod
    def browser_id(request: web.Request) -> str | None:
        value = request.cookies.get(BROWSER_COOKIE, "")
        return value if 16 <= len(value) <= 64 and value.isascii() else None

    def browser(self, request: web.Request) -> str:
        """The id a page's tokens are bound to: the cookie's, or a new one (see remember)."""
        return self.browser_id(request) or secrets.token_urlsafe(24)

    def remember(self, request: web.Request, response: web.StreamResponse, browser: str) -> None:
        """Set the cookie when the page was rendered for a new browser id."""
        if self.browser_id(request) != browser:
            set_cookie(request, response, BROWSER_COOKIE, browser)

    def token(self, browser: str, scope: str) -> str:
        mac = hmac.new(self.secret, f"{browser}|{scope}".encode(), hashlib.sha256)
        return mac.hexdigest()[:40]

    def check(self, request: web.Request, scope: str, given: str | None) -> bool:
        """Same origin, a known browser, and the token of this browser for this scope."""
        if not same_origin(request):
            return False
        browser = self.browser_id(request)
        given = given or request.headers.get(CSRF_HEADER)
        if browser is None or not given:
            return False
        return hmac.compare_digest(self.token(browser, scope), given)


def same_origin(request: web.Request) -> bool:
    """Refuse a post another site's page made; browsers name the page's origin on every post."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # an old browser or a script without one; the token still decides
    if origin == "null":
        return fetch_site == "same-origin"  # a page of ours under a strict referrer policy
    return names_this_site(request, origin)


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """A year, the whole site; Secure over https (bot/web/trust.py decides, as for dashboards)."""
    web_trust.set_cookie(request, response, name, value, path="/", max_age=YEAR)
