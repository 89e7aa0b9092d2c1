"""The web chat: a browser channel next to Telegram, on the same handlers, templates and outbox.

A browser chat is a private chat of channel "web" whose chat id is also its account id (as in
Telegram). In the local demo every person of the org file has a chat "p-<code>" and a picker
lets one play anyone; in production only residents' chats "r-<random token>" exist, started at
/r, and the chat's address is the resident's key to follow their case. What a user does is
recorded in web_messages and run through `Conversations`; what the bot says goes through the
outbox like any channel's messages and is delivered here into web_messages, which browsers
read (page, JSON history, and server-sent events with resume by Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.app import App, open_app
from bot.config import load_settings
from bot.web import trust as web_trust
from bot.web.chat.constants import (
    GRID_CODE,
    HISTORY_PAGE,
    POLL_SECONDS,
    STATIC_DIR,
    STATIC_FILES,
    chat_pattern,
)
from bot.web.chat.grid_qr import grid_qr_route
from bot.web.chat.inbound import Inbound
from bot.web.chat.render import SHA256, keyboard_state, message_view, views_with_edits
from bot.web.chat.requests import ChatAt, Refused, form_field, query_int
from bot.web.chat.security import (
    CHAT_COOKIE,
    PAGE_HEADERS,
    Guard,
    load_secret,
    set_cookie,
)
from bot.web.chat.uploads import WebPhotos
from handlers.conversation import Conversations
from handlers.routes import ALL_ROUTES
from storage.webchat import (
    EDIT,
    PERSON_PREFIX,
    TOKEN_PREFIX,
    person_chat_id,
)

log = logging.getLogger(__name__)


class WebChat(Inbound):
    """Routes, delivery of the outbox's web rows and the live streams of open chats."""

    def __init__(self, app: App, *, demo: bool, keepalive_seconds: float = 15.0) -> None:
        self.app = app
        self.demo = demo
        self.keepalive_seconds = keepalive_seconds
        self.photos = WebPhotos(app.media)
        self.conversations = Conversations(
            app.uow, app.workflow, self.photos, ALL_ROUTES, default_locale=app.settings.locale
        )
        web_settings = app.settings.web
        secret = web_settings.chat_secret.get_secret_value() if web_settings.chat_secret else None
        self.guard = Guard(load_secret(secret, app.settings.data_dir))
        self._wake = asyncio.Event()
        self._deliver_lock = asyncio.Lock()
        self._chat_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._listeners: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._closing = False
        self._unsubscribe = app.uow.wakeups.subscribe(self.on_wakeup)
        self._static_version = {
            name: hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
            for name in STATIC_FILES
        }

    def routes(self) -> list[web.RouteDef]:
        chat = "/chat/{chat_id:" + chat_pattern(self.demo) + "}"
        routes = [
            web.get("/r", self.start_page, name="webchat.start"),
            web.post("/r", self.start_chat),
            grid_qr_route(self),
            web.get(chat, self.chat_page, name="webchat.chat"),
            web.get(chat + "/history", self.history, name="webchat.history"),
            web.get(chat + "/events", self.events, name="webchat.events"),
            web.post(chat + "/send", self.send, name="webchat.send"),
            web.post(chat + "/press", self.press, name="webchat.press"),
            web.get(chat + "/photo/{sha:[0-9a-f]{64}}", self.photo, name="webchat.photo"),
            web.get("/static/webchat/{name}", self.static, name="webchat.static"),
        ]
        if self.demo:
            # The picker lets anyone act as anyone: it exists in the local demo only.
            routes += [
                web.get("/chat", self.picker, name="webchat.picker"),
                web.post("/chat/pick", self.pick, name="webchat.pick"),
            ]
        return routes

    # Pages -----------------------------------------------------------------------------------

    async def picker(self, request: web.Request) -> web.StreamResponse:
        """Demo: pick who you are, by role, or become a new resident of a grid."""
        await self.link_people()
        async with self.app.uow.reading() as uow:
            store = uow.webchat
            directory = await store.directory()
            grids = await store.grids()
        browser = self.guard.browser(request)
        current = request.cookies.get(CHAT_COOKIE)
        return self._page(
            request, "chat_picker.html.j2", browser=browser, directory=directory, grids=grids,
            csrf=self.guard.token(browser, "pick"),
            current=current if current and self._valid_chat(current) else None,
        )  # fmt: skip

    async def pick(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not self.guard.check(request, "pick", form_field(form, "csrf")):
            return self._refusal(request, Refused(403, "csrf_refused"))
        code = form_field(form, "person")
        if code:
            chat_id = person_chat_id(code)
            async with self.app.uow.reading() as uow:
                person = await uow.webchat.person_by_code(code)
            if chat_id is None or person is None:
                return self._refusal(request, Refused(404, "unknown_person"))
            await self.link_people()
            # The first visit says hello (and shows a resident's menu), like /start would.
            await self._take(chat_id, "start", None, self._locale(request), text="/start")
        else:
            chat_id = await self._new_resident(request, form_field(form, "grid"))
        return self._open(request, chat_id)

    async def start_page(self, request: web.Request) -> web.StreamResponse:
        """Public mode: a resident starts a chat here (a grid's QR code adds ?grid=CODE)."""
        browser = self.guard.browser(request)
        current = request.cookies.get(CHAT_COOKIE, "")
        if not (current.startswith(TOKEN_PREFIX) and self._valid_chat(current)):
            current = ""
        if current:
            async with self.app.uow.reading() as uow:
                current = current if await uow.webchat.exists(current) else ""
        grid = request.query.get("grid", "")
        return self._page(
            request, "chat_start.html.j2", browser=browser, csrf=self.guard.token(browser, "start"),
            grid=grid if GRID_CODE.fullmatch(grid) else "", current=current or None,
        )  # fmt: skip

    async def start_chat(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not self.guard.check(request, "start", form_field(form, "csrf")):
            return self._refusal(request, Refused(403, "csrf_refused"))
        return self._open(request, await self._new_resident(request, form_field(form, "grid")))

    async def _new_resident(self, request: web.Request, grid_code: str) -> str:
        """A fresh chat with an unguessable id; the bot asks for the grid (or takes the QR's)."""
        chat_id = TOKEN_PREFIX + secrets.token_urlsafe(18)
        text = "/start"
        if grid_code and GRID_CODE.fullmatch(grid_code):
            async with self.app.uow.reading() as uow:
                place = await uow.channels.place_by_code(grid_code)
            if place is not None and place.kind == "grid":
                text = f"/start {place.code}"
        await self._take(chat_id, "start", None, self._locale(request), text=text)
        return chat_id

    def _open(self, request: web.Request, chat_id: str) -> web.StreamResponse:
        """Go to the chat, and remember it as this browser's current one."""
        response = web.HTTPSeeOther(self._url(request, "webchat.chat", chat_id=chat_id))
        set_cookie(request, response, CHAT_COOKIE, chat_id)
        raise response

    async def chat_page(self, request: web.Request) -> web.StreamResponse:
        return await self.chat_page_of(request, await self._chat(request))

    async def chat_page_of(
        self, request: web.Request, at: ChatAt, **extra: Any
    ) -> web.StreamResponse:
        """The chat's page; `extra` goes to the template (the staff workspace's header)."""
        chat_id = at.chat_id
        async with self.app.uow.reading() as uow:
            store = uow.webchat
            rows = await store.history(chat_id, limit=HISTORY_PAGE)
            owner = await store.person_name(chat_id)
        placeholder = await self._placeholder(request, chat_id)
        views = [message_view(row, self._photo_url(request, at)) for row in rows]
        browser = self.guard.browser(request)
        csrf = self.guard.token(browser, at.scope)
        reply_to = request.query.get("reply_to", "")
        replying = next((v for v in views if str(v["id"]) == reply_to), None)
        urls = {
            name: at.url(request, name) for name in ("send", "press", "events", "history", "chat")
        }
        config = {
            "chat": chat_id, "csrf": csrf, "urls": urls, "last": rows[-1].id if rows else 0,
            "keyboard": keyboard_state(views), "placeholder": placeholder,
        }  # fmt: skip
        return self._page(
            request, "chat.html.j2", browser=browser, chat_id=chat_id, messages=views, owner=owner,
            keyboard=config["keyboard"], urls=urls, csrf=csrf, config=config,
            nonce=secrets.token_hex(6), replying=replying, placeholder=placeholder,
            resident_link=chat_id.startswith(TOKEN_PREFIX),
            link=self._public_link(request, urls["chat"]), **extra,
        )  # fmt: skip

    def _public_link(self, request: web.Request, path: str) -> str:
        base = self.app.settings.web.public_url
        if base:
            return base.rstrip("/") + path
        return str(request.url.with_path(path).with_query(None))

    def _photo_url(self, request: web.Request, at: ChatAt) -> Callable[[str], str]:
        return lambda sha: at.url(request, "photo", sha=sha)

    async def history(self, request: web.Request) -> web.StreamResponse:
        return await self.history_of(request, await self._chat(request))

    async def history_of(self, request: web.Request, at: ChatAt) -> web.StreamResponse:
        """The chat's messages after ?after=ID as JSON (what the page's script catches up with)."""
        chat_id = at.chat_id
        after = query_int(request.query.get("after"))
        async with self.app.uow.reading() as uow:
            rows = await uow.webchat.history(chat_id, after=after, limit=HISTORY_PAGE)
            edited = await uow.webchat.edited(chat_id, rows)
        url = self._photo_url(request, at)
        return web.json_response(
            {
                "messages": views_with_edits(rows, edited, url),
                "placeholder": await self._placeholder(request, chat_id),
            },
            headers=PAGE_HEADERS,
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await self.events_of(request, await self._chat(request))

    async def events_of(
        self, request: web.Request, at: ChatAt,
        still_allowed: Callable[[], Awaitable[bool]] | None = None,
    ) -> web.StreamResponse:  # fmt: skip
        """Server-sent events: each message after Last-Event-ID (or ?after=), then new ones live.

        `still_allowed`, asked before each read, ends the stream once it says no (a staff
        member signed out, or their account was disabled, while the page was open)."""
        chat_id = at.chat_id
        last = query_int(request.headers.get("Last-Event-ID") or request.query.get("after"))
        response = web.StreamResponse(
            headers={
                **PAGE_HEADERS,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # a proxy must pass events on at once
            }
        )
        await response.prepare(request)
        listener = asyncio.Event()
        self._listeners[chat_id].add(listener)
        url = self._photo_url(request, at)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing:
                if still_allowed is not None and not await still_allowed():
                    break
                listener.clear()  # before reading, so a delivery during the read is not missed
                async with self.app.uow.reading() as uow:
                    rows = await uow.webchat.history(chat_id, after=last, limit=100)
                    edited = await uow.webchat.edited(chat_id, rows)
                for view in views_with_edits(rows, edited, url):
                    # An edit is an "update" event: the page redraws that message in place.
                    kind = "update" if view["direction"] == EDIT else "message"
                    data = json.dumps(view, ensure_ascii=False)
                    await response.write(
                        f"id: {view['id']}\nevent: {kind}\ndata: {data}\n\n".encode()
                    )
                if rows:
                    last = rows[-1].id
                if len(rows) == 100:
                    continue
                # Other processes' messages wake us through the database (storage/wakeups.py);
                # while that listener is down, the history is reread every POLL_SECONDS.
                wait = self.keepalive_seconds
                if not self.app.uow.wakeups.live:
                    wait = min(wait, POLL_SECONDS)
                try:
                    async with asyncio.timeout(wait):  # not wait_for (bot/runner.py)
                        await listener.wait()
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
        except ConnectionResetError:
            pass  # the browser went away; it reconnects with Last-Event-ID
        finally:
            self._listeners[chat_id].discard(listener)
            if not self._listeners[chat_id]:
                del self._listeners[chat_id]
        return response

    async def photo(self, request: web.Request) -> web.StreamResponse:
        return await self.photo_of(request, await self._chat(request))

    async def photo_of(self, request: web.Request, at: ChatAt) -> web.StreamResponse:
        """A photo this chat was sent (the location-free copy); nothing else is served."""
        chat_id = at.chat_id
        sha = request.match_info["sha"]
        async with self.app.uow.reading() as uow:
            mime = await uow.webchat.shown_photo_mime(chat_id, sha)
        if mime is None or not SHA256.fullmatch(sha):
            raise web.HTTPNotFound()
        try:
            data = await self.app.media.read_public_sha(sha)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(
            body=data, content_type=mime,
            headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff",
                     "Content-Security-Policy": "default-src 'none'"},
        )  # fmt: skip

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=(STATIC_DIR / name).read_bytes(), content_type=STATIC_FILES[name],
            charset="utf-8", headers={"Cache-Control": "public, max-age=31536000, immutable",
                                      "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip


def setup_webchat(web_app: web.Application, app: App, *, demo: bool) -> WebChat:
    """Add the web chat's routes to `web_app`; the caller runs `WebChat.run()` beside it.

    demo=True: the local demo (bind it to 127.0.0.1): the role picker at /chat lets one play
    anyone of the org file. demo=False: production, residents only (/r), no picker at all.
    """
    chat = WebChat(app, demo=demo)
    web_trust.install(web_app, app.settings.web)
    web_app.add_routes(chat.routes())

    async def _on_startup(_: web.Application) -> None:
        if demo:
            await chat.link_people()

    async def _on_shutdown(_: web.Application) -> None:
        await chat.close()

    web_app.on_startup.append(_on_startup)
    web_app.on_shutdown.append(_on_shutdown)
    return chat


__all__ = ["PERSON_PREFIX", "WebChat", "WebPhotos", "setup_webchat"]


async def _serve_demo(port: int) -> None:
    """`python -m bot.web.chat.app`: the demo chat alone on 127.0.0.1, until Ctrl-C."""

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    app = await open_app(settings)
    if await app.org_is_empty():
        log.warning("no organisation loaded yet: run `shuoshi init` first")
    web_app = web.Application()
    chat = setup_webchat(web_app, app, demo=True)
    runner = web.AppRunner(web_app)
    await runner.setup()
    # The picker lets anyone act as anyone: this server answers on the loopback address only.
    await web.TCPSite(runner, "127.0.0.1", port).start()
    log.info("web chat demo on http://127.0.0.1:%s/chat (residents: /r)", port)
    delivering = asyncio.create_task(chat.run())
    try:
        await asyncio.Event().wait()
    finally:
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        await runner.cleanup()
        await app.close()


if __name__ == "__main__":
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_demo(int(sys.argv[1]) if len(sys.argv) > 1 else 8080))
