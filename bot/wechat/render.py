"""What a WeChat follower is sent for one outbox row: the parts (photos, then the text or a
menu of options). The template message that stands in for them outside the 48-hour window is
in template.py.

Our texts are Telegram's HTML subset; WeChat shows plain text (links as <a href>), so tags are
dropped, links kept, entities decoded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from bot.wechat.inbound import option_id
from handlers.messages import Outgoing
from handlers.render import Renderer

# WeChat takes a customer-service text of up to 2,048 bytes; keep well inside it.
TEXT_LIMIT = 600
_LINK = re.compile(r"<a\s+href=\"(https?://[^\"]+)\"\s*>(.*?)</a>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def plain(text: str) -> str:
    """Telegram HTML -> WeChat text: links kept, every other tag dropped, entities decoded."""
    links: list[str] = []

    def keep(match: re.Match[str]) -> str:
        links.append(f'<a href="{match.group(1)}">{_TAG.sub("", match.group(2))}</a>')
        return f"\x00{len(links) - 1}\x00"

    text = _TAG.sub("", _LINK.sub(keep, text))
    text = html.unescape(text)
    return re.sub("\x00([0-9]+)\x00", lambda m: links[int(m.group(1))], text).strip()


@dataclass(frozen=True)
class Part:
    kind: str  # image | text | menu
    photo: str | None = None  # sha256 of the public copy (image)


def parts_of(message: Outgoing) -> list[Part]:
    parts = [Part("image", photo=sha) for sha in message.photos]
    if message.text.strip():
        parts.append(Part("menu" if message.buttons else "text"))
    return parts


def text_body(message: Outgoing, r: Renderer) -> str:
    """The words of a message with hints where Telegram would have shown a keyboard key."""
    lines = [plain(message.text)]
    if message.request_location:
        lines.append(r.macro("wechat.j2", "location_hint"))
    if message.request_contact:
        lines.append(r.macro("wechat.j2", "phone_hint"))
    return "\n".join(line for line in lines if line)[:TEXT_LIMIT]


def custom_message(
    openid: str, message: Outgoing, part: Part, row_id: int, r: Renderer, media_id: str = ""
) -> dict[str, Any]:
    """The body of one customer-service call."""
    if part.kind == "image":
        return {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}
    body = text_body(message, r)
    if part.kind == "text":
        return {"touser": openid, "msgtype": "text", "text": {"content": body}}
    options = [b for line in message.buttons for b in line]
    return {
        "touser": openid,
        "msgtype": "msgmenu",
        "msgmenu": {
            "head_content": body,
            "list": [
                {"id": option_id(row_id, i), "content": f"{i + 1}. {plain(b.text)}"}
                for i, b in enumerate(options)
            ],
            "tail_content": r.macro("wechat.j2", "options_hint"),
        },
    }
