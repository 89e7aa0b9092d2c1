"""What a browser is shown of a chat message: bot HTML reduced to a safe tree, never raw markup.

Bot texts are Telegram's HTML subset produced by our templates (user text inside them is
escaped). Rather than trusting that and inserting them as HTML, they are parsed into a tree of
text strings and a few allowed tags; the page's template and script re-create those tags
around text nodes. Whatever else is in a text (a tag we do not know, a script) ends up as
visible text or is dropped, never as markup. What users typed is never parsed at all.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from storage.rows import WebMessageRow
from storage.webchat import EDIT, edit_target
from workflow.clock import local

# Tags Telegram's HTML mode knows, folded onto the few the page draws.
_TAGS = {
    "b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "ins": "u", "s": "s", "strike": "s",
    "del": "s", "code": "code", "pre": "pre", "a": "a", "blockquote": "blockquote",
}  # fmt: skip
ALLOWED_TAGS = frozenset(_TAGS.values())
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_MAX_DEPTH = 8  # our templates nest two levels at most; deeper input is flattened to text
SHA256 = re.compile(r"[0-9a-f]{64}")

Node = str | list[Any]  # "text" or [tag, {"href": ...}, [children]]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Node] = []
        self._open: list[tuple[str, list[Node]]] = [("", self.root)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._text("\n")
            return
        kind = _TAGS.get(tag)
        if kind is None or len(self._open) > _MAX_DEPTH:
            return  # an unknown tag is dropped; the text inside it stays text
        attributes: dict[str, str] = {}
        if kind == "a":
            href = (dict(attrs).get("href") or "").strip()
            if href.lower().startswith(_LINK_SCHEMES):
                attributes["href"] = href
        children: list[Node] = []
        self._open[-1][1].append([kind, attributes, children])
        self._open.append((tag, children))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._text("\n")

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth][0] == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._text(data)

    def _text(self, text: str) -> None:
        children = self._open[-1][1]
        if children and isinstance(children[-1], str):
            children[-1] += text
        else:
            children.append(text)


def html_tree(text: str) -> list[Node]:
    """Telegram-style HTML as a tree of text and allowed tags; everything else is text."""
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def plain_text(nodes: list[Node]) -> str:
    """The words of a tree without any markup (tests and logs)."""
    return "".join(n if isinstance(n, str) else plain_text(n[2]) for n in nodes)


# Messages a reply does something with: a reply to a case card (or a supervision card, an
# emergency page, a supervisor's instruction) is a progress note or an instruction. Other bot
# messages get no "Reply" link: answering them is just typing.
REPLYABLE = frozenset({"case_card", "supervision", "page", "instruction"})
QUOTE_LENGTH = 60


def quote_of(row: WebMessageRow) -> str:
    """The start of a message's words, as a reply quotes it."""
    p = row.payload or {}
    text = p.get("text") or ""
    words = plain_text(html_tree(text)) if row.direction == "out" else text
    words = " ".join(words.split())
    return words if len(words) <= QUOTE_LENGTH else words[: QUOTE_LENGTH - 1] + "…"


def message_view(row: WebMessageRow, photo_url: Any) -> dict[str, Any]:
    """One message as the page and its script draw it; `photo_url(sha)` makes an image URL."""
    p = row.payload or {}
    out = row.direction == "out"
    text = p.get("text") or ""
    nodes = html_tree(text) if out else ([text] if text else [])
    return {
        "id": row.id,
        "direction": row.direction,
        "kind": "bot" if out else p.get("kind", "text"),
        "at": local(row.created_at).strftime("%m-%d %H:%M"),
        # Bot texts are parsed into the allowed tags; what a user typed is one text node.
        "nodes": nodes,
        "preview": plain_text(nodes)[:80],
        # A bot message's photos, or the user's own once stored (uploads.WebPhotos.save).
        "photos": [photo_url(s) for s in p.get("photos") or [] if SHA256.fullmatch(str(s))],
        "buttons": [
            [{"text": str(b.get("text", "")), "data": str(b.get("data", ""))} for b in line]
            for line in p.get("buttons") or []
        ]
        if out
        else [],
        "keyboard": [[str(k) for k in line] for line in p.get("keyboard") or []] if out else [],
        "request_location": bool(p.get("request_location")) and out,
        "request_contact": bool(p.get("request_contact")) and out,
        "force_reply": bool(p.get("force_reply")) and out,
        "remove_keyboard": bool(p.get("remove_keyboard")) and out,
        "case_number": row.case_number,
        "reply_to": _int_or_none(p.get("reply_to_message_id")),
        "quote": str(p.get("reply_quote") or "") if not out else "",
        "replyable": out and (p.get("purpose") in REPLYABLE),
        # What the user did besides typing: the photo's file name, a location, a phone, a button.
        "file_name": p.get("file_name"),
        "location": p.get("location"),
        "phone": p.get("phone"),
        "pressed": p.get("pressed"),
    }


def views_with_edits(
    rows: list[WebMessageRow], edited: dict[int, WebMessageRow], photo_url: Any
) -> list[dict[str, Any]]:
    """Messages as message_view draws them, and each edit row as {"id": its own id (the
    stream's position), "direction": "edit", "message": the edited message as it is now}."""
    views = []
    for row in rows:
        if row.direction != EDIT:
            views.append(message_view(row, photo_url))
        elif (target := edited.get(edit_target(row) or 0)) is not None:
            views.append({"id": row.id, "direction": EDIT,
                          "message": message_view(target, photo_url)})  # fmt: skip
    return views


def keyboard_state(views: list[dict[str, Any]]) -> dict[str, Any]:
    """The reply keyboard after these messages, as Telegram would show it.

    A menu keyboard stays until another one replaces it or a message removes it; a keyboard
    that asks for a location or phone is for one answer and gives way to the menu after it.
    """
    menu: list[list[str]] = []
    once: dict[str, Any] | None = None
    for view in views:
        if view["direction"] == "in":
            once = None
        elif view["request_location"] or view["request_contact"]:
            once = {
                "keys": view["keyboard"],
                "request_location": view["request_location"],
                "request_contact": view["request_contact"],
            }
        elif view["keyboard"]:
            menu, once = view["keyboard"], None
        elif view["remove_keyboard"]:
            menu = []
    return {"menu": menu, "once": once}


def _int_or_none(value: Any) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None
