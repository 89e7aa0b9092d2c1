"""What a WeChat follower is sent for one outbox row: the parts (photos, then the text or a
menu of options), and the template message that stands in for them outside the 48-hour window.

Our texts are Telegram's HTML subset; WeChat shows plain text (links as <a href>), so tags are
dropped, links kept, entities decoded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.wechat.inbound import option_id
from handlers.messages import Outgoing
from handlers.render import Renderer

# WeChat takes a customer-service text of up to 2,048 bytes; keep well inside it.
TEXT_LIMIT = 600
TEMPLATE_FIELD_LIMIT = 60
SHOWN_ZONE = ZoneInfo("Asia/Shanghai")
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


def template_message(
    openid: str, template_id: str, message: Outgoing, r: Renderer, url: str | None,
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """The template message (模板消息) for a case's news when customer-service messages cannot
    reach the follower. Fields: first, keyword1 (case number), keyword2 (what happened),
    keyword3 (time), remark: the classic template layout (README "WeChat")."""
    summary = plain(message.text).replace("\n", " ")
    if len(summary) > TEMPLATE_FIELD_LIMIT:
        summary = summary[: TEMPLATE_FIELD_LIMIT - 1] + "…"
    data = {
        "first": {"value": r.macro("wechat.j2", "template_first", purpose=message.purpose)},
        "keyword1": {"value": message.case_number or ""},
        "keyword2": {"value": summary},
        "keyword3": {"value": now.astimezone(SHOWN_ZONE).strftime("%Y-%m-%d %H:%M")},
        "remark": {"value": r.macro("wechat.j2", "template_remark", linked=url is not None)},
    }
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
    if url is not None:
        body["url"] = url
    return body
