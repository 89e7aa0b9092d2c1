"""What a grid's QR codes say: the web chat's start page and the Telegram bot's deep link.

Both go through the one enrolment residents already have: `/r?grid=CODE` starts a web chat
with `/start CODE`, and `t.me/<bot>?start=CODE` makes Telegram send the same `/start CODE`
(handlers/resident_enrol.py: route_start), which places the resident in that grid.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    import segno

# What Telegram accepts after ?start= (and passes to the bot as /start PAYLOAD). A grid code
# may also hold "." (storage/org_file): such a grid's board has no Telegram code.
TELEGRAM_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Telegram usernames: 5-32 of letters, digits and _, starting with a letter.
BOT_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
WEB_CHAT_PATH = "/r"


def valid_base_url(value: str) -> bool:
    """An http(s) address with a host, as [web] public_url must be (bot/config.py)."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def web_chat_link(base_url: str, grid_code: str) -> str:
    """The start page of the web chat, with the grid already chosen."""
    return base_url.rstrip("/") + WEB_CHAT_PATH + "?" + urlencode({"grid": grid_code})


def telegram_link(bot_username: str, grid_code: str) -> str | None:
    """The bot's deep link for the grid, or None where Telegram cannot carry the code."""
    if not TELEGRAM_PAYLOAD.fullmatch(grid_code):
        return None
    return f"https://t.me/{bot_username.lstrip('@')}?start={grid_code}"


def make_qr(link: str) -> segno.QRCode:
    # Imported here: the web chat imports this module, and needs segno only for /r/qr.
    import segno

    # Level M at least (segno raises it when the version has room): a board outdoors gets
    # scratched and rained on.
    return segno.make_qr(link, error="m", boost_error=True)


def qr_png(link: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make_qr(link).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(link: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make_qr(link).save(out, kind="svg", scale=scale, border=4, xmldecl=False)
    return out.getvalue()
