"""What every web chat request handler shares: language, pages, links, the chat asked for,
and the localized refusals."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from bot.web.chat.constants import (
    LABELS,
    TEXT_LIMIT,
    chat_pattern,
)
from bot.web.chat.delivery import Delivery
from bot.web.chat.security import (
    LANG_COOKIE,
    PAGE_HEADERS,
    set_cookie,
)
from handlers.messages import storable
from handlers.render import LOCALES, Renderer
from storage.media import MediaRefused
from storage.rows import WebMessageRow
from storage.webchat import CHANNEL

log = logging.getLogger(__name__)


class Refused(Exception):
    """A request answered with a localized notice instead of being run."""

    def __init__(self, status: int, label: str) -> None:
        super().__init__(label)
        self.status = status
        self.label = label


@dataclass(frozen=True)
class ChatAt:
    """A chat as one family of routes serves it: a resident's (or the demo's) at
    /chat/{chat_id}, where the address names the chat, or a staff member's at /dashboard/staff,
    where the signed-in session does (bot/web/chat/staff.py)."""

    chat_id: str
    routes: str  # route names are "<routes>.<page>": webchat.send, staff.send, ...
    scope: str  # what the page's form token is bound to (security.Guard)
    in_url: bool = True  # whether the routes' paths hold {chat_id}

    def url(self, request: web.Request, page: str, /, **parts: str) -> str:
        if self.in_url:
            parts["chat_id"] = self.chat_id
        return str(request.app.router[f"{self.routes}.{page}"].url_for(**parts))


def resident_chat(chat_id: str) -> ChatAt:
    """A chat whose address is its key (residents; in the demo, anyone's)."""
    return ChatAt(chat_id, "webchat", "chat:" + chat_id)


class ChatRequests(Delivery):
    """Helpers of the routes (pages and input alike)."""

    def _locale(self, request: web.Request) -> str:
        wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
        return wanted if wanted in LOCALES else self.app.settings.locale

    def _page(
        self, request: web.Request, template: str, *, browser: str, status: int = 200, **ctx: Any
    ) -> web.Response:
        """A page rendered in the request's language, bound to the browser's token id."""
        locale = self._locale(request)
        renderer = Renderer(locale)
        ctx.setdefault("demo", self.demo)
        body = renderer.render(
            f"web/{template}",
            locale=locale,
            url=lambda route, **parts: self._url(request, route, **parts),
            static=lambda name: self._static_url(request, name),
            lang_urls={code: f"{request.path}?lang={code}" for code in LOCALES},
            **ctx,
        )
        response = web.Response(
            text=body, status=status, content_type="text/html", charset="utf-8",
            headers=PAGE_HEADERS,
        )  # fmt: skip
        self.guard.remember(request, response, browser)
        if request.query.get("lang") in LOCALES:
            set_cookie(request, response, LANG_COOKIE, request.query["lang"])
        return response

    def _static_url(self, request: web.Request, name: str) -> str:
        """Versioned by content, so a browser may keep a file until it changes."""
        url = self._url(request, "webchat.static", name=name)
        return f"{url}?v={self._static_version[name]}"

    def _url(self, request: web.Request, route: str, /, **parts: str) -> str:
        return str(request.app.router[route].url_for(**parts))

    def _label(self, request: web.Request, name: str, **params: Any) -> str:
        return Renderer(self._locale(request)).macro(LABELS, name, **params)

    async def _placeholder(self, request: web.Request, chat_id: str) -> str:
        """The text box's hint for the step this chat's conversation is at."""
        async with self.app.uow.reading() as uow:
            conversation = await uow.channels.conversation(CHANNEL, chat_id, chat_id)
        return self._label(request, "placeholder", step=conversation.step or "")

    def _valid_chat(self, chat_id: str) -> bool:
        return re.fullmatch(chat_pattern(self.demo), chat_id) is not None

    async def _chat(self, request: web.Request) -> ChatAt:
        """The chat of the URL, when it exists (has an account or a message); else 404."""
        chat_id = request.match_info["chat_id"]
        if not self._valid_chat(chat_id):
            raise web.HTTPNotFound()
        async with self.app.uow.reading() as uow:
            known = await uow.webchat.exists(chat_id)
        if not known:
            raise web.HTTPNotFound(
                text=self._label(request, "chat_not_found"), content_type="text/plain"
            )
        return resident_chat(chat_id)

    @staticmethod
    def _wants_json(request: web.Request) -> bool:
        return "application/json" in request.headers.get("Accept", "")

    def _done(self, request: web.Request, at: ChatAt) -> web.StreamResponse:
        if self._wants_json(request):
            return web.json_response({"ok": True}, headers=PAGE_HEADERS)
        # A page without script posts the form and comes back to the chat's newest message.
        raise web.HTTPSeeOther(at.url(request, "chat") + "#end")

    def _refusal(self, request: web.Request, refused: Refused) -> web.StreamResponse:
        text = self._label(request, refused.label)
        if refused.label == "upload_too_large":
            limit = self.app.media.max_bytes // 1048576
            text = Renderer(self._locale(request)).error(
                MediaRefused("too_large", text, size=4 * self.app.media.max_bytes, limit_mb=limit)
            )
        if self._wants_json(request):
            return web.json_response(
                {"ok": False, "error": text}, status=refused.status, headers=PAGE_HEADERS
            )
        return web.Response(
            text=text, status=refused.status, content_type="text/plain", headers=PAGE_HEADERS
        )


def offered_buttons(row: WebMessageRow | None) -> dict[str, str]:
    """The buttons a bot message showed, data -> label; nothing for any other message."""
    if row is None or row.direction != "out":
        return {}
    return {
        str(b.get("data")): str(b.get("text"))
        for line in row.payload.get("buttons") or []
        for b in line
    }


async def read_field(part: BodyPartReader) -> str:
    """A form field of a multipart post; fields are short, so a huge one is refused."""
    data = b""
    while chunk := await part.read_chunk(16 * 1024):
        data += chunk
        if len(data) > TEXT_LIMIT * 4 + 1024:
            raise Refused(413, "bad_request")
    return storable(data.decode("utf-8", "replace"))


def form_field(form: Any, name: str) -> str:
    value = form.get(name)
    return storable(value) if isinstance(value, str) else ""


def query_int(value: str | None) -> int:
    text = (value or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else 0


def as_float(value: str | None) -> float | None:
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if number == number else None  # NaN is not a place
