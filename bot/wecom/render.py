"""What a WeCom member or app group chat is sent for one outbox row: the parts (photos, then
the text or an interactive template card), and a card's replacement when its case moves on.

A message with buttons becomes a `template_card` of type button_interaction: its buttons are
the message's (for a case card: the transition table's screens, as in Telegram), each button's
key the callback data a press brings back in `template_card_event`. WeCom shows six buttons at
most: further choices are listed with numbers, and a typed number picks one (as in WeChat).
App group chats take no cards: they get the text, with a hint that the buttons are in the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.wechat.render import plain
from handlers.messages import Button, Outgoing
from handlers.render import Renderer

TEMPLATE = "wecom.j2"
# WeCom takes a text of up to 2,048 bytes (longer is cut); Chinese is 3 bytes a character.
TEXT_BYTES = 2000
TITLE_LIMIT = 36  # main_title.title: one line on a phone
SUBTITLE_LIMIT = 600  # sub_title_text: the card's body (WeCom folds long text)
MAX_BUTTONS = 6  # button_list holds at most six
BUTTON_TEXT_LIMIT = 10  # "建议不超过10个字": longer labels are cut on the phone anyway
STALE_KEY = "stale"  # the key of a finished card's grey button: handlers call it expired


@dataclass(frozen=True)
class Part:
    kind: str  # image | text | card
    photo: str | None = None  # sha256 of the public copy (image)


def parts_of(message: Outgoing, *, group: bool) -> list[Part]:
    parts = [Part("image", photo=sha) for sha in message.photos]
    if message.text.strip():
        parts.append(Part("card" if message.buttons and not group else "text"))
    return parts


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_body(message: Outgoing, r: Renderer, *, group: bool) -> str:
    lines = [plain(message.text)]
    if group and message.buttons:
        lines.append(r.macro(TEMPLATE, "group_hint"))
    elif message.force_reply:
        lines.append(r.macro(TEMPLATE, "reply_hint"))
    if message.request_location:
        lines.append(r.macro(TEMPLATE, "location_hint"))
    return _cut_bytes("\n".join(line for line in lines if line), TEXT_BYTES)


def text_message(to: str, message: Outgoing, r: Renderer, *, group: bool) -> dict[str, Any]:
    key = "chatid" if group else "touser"
    return {key: to, "msgtype": "text", "text": {"content": text_body(message, r, group=group)}}


def image_message(to: str, media_id: str, *, group: bool) -> dict[str, Any]:
    key = "chatid" if group else "touser"
    return {key: to, "msgtype": "image", "image": {"media_id": media_id}}


def template_card(message: Outgoing, task_id: str, r: Renderer) -> dict[str, Any]:
    """The card of a message with buttons (or, finished, without: one grey button)."""
    lines = [line for line in plain(message.text).splitlines() if line.strip()]
    title = lines[0] if lines else ""
    body = lines[1:]
    if len(title) > TITLE_LIMIT:
        body.insert(0, title)
        title = _cut(title, TITLE_LIMIT)
    buttons: list[Button] = [b for row in message.buttons for b in row]
    if len(buttons) > MAX_BUTTONS:  # the rest by number (bot/wecom/inbound.py)
        body += [f"{i}. {plain(b.text)}" for i, b in enumerate(buttons, 1)]
        body.append(r.macro(TEMPLATE, "number_hint"))
    if message.force_reply:
        body.append(r.macro(TEMPLATE, "reply_hint"))
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": title},
        "sub_title_text": _cut("\n".join(body), SUBTITLE_LIMIT),
        "task_id": task_id,
    }
    if buttons:
        card["button_list"] = [
            {"text": _cut(plain(b.text), BUTTON_TEXT_LIMIT), "style": 1, "key": b.data}
            for b in buttons[:MAX_BUTTONS]
        ]
    else:
        done = r.macro(TEMPLATE, "card_done")
        card["button_list"] = [{"text": done, "style": 2, "key": STALE_KEY}]
        card["replace_text"] = done
    return card


def card_message(userid: str, message: Outgoing, task_id: str, r: Renderer) -> dict[str, Any]:
    return {"touser": userid, "msgtype": "template_card",
            "template_card": template_card(message, task_id, r)}  # fmt: skip
