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
import re
import secrets
import weakref
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from bot.app import App, open_app
from bot.config import load_settings
from bot.web import trust as web_trust
from bot.web.chat.render import SHA256, keyboard_state, message_view
from bot.web.chat.security import (
    CHAT_COOKIE,
    LANG_COOKIE,
    PAGE_HEADERS,
    Guard,
    load_secret,
    set_cookie,
)
from handlers.conversation import Conversations
from handlers.messages import Incoming, Location, PhotoRef, storable
from handlers.render import LOCALES, Renderer
from handlers.routes import ALL_ROUTES
from storage.db import is_transient
from storage.media import MediaRefused, MediaStore
from storage.rows import WebMessageRow
from storage.webchat import (
    CHANNEL,
    PERSON_PREFIX,
    TOKEN_PREFIX,
    WebChatStore,
    person_chat_id,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"chat.js": "application/javascript", "chat.css": "text/css"}
LABELS = "web/webchat_labels.j2"
HISTORY_PAGE = 200  # messages a page shows; older ones stay in web_messages
TEXT_LIMIT = 4096  # as Telegram: longer texts are cut (the page's text box stops there too)
FILES_PER_POST = 20
KEY = re.compile(r"[A-Za-z0-9_-]{8,40}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{4,19}")
GRID_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# What a forged button press is turned into: data no flow takes, so it gets the "expired"
# answer (or the step's "use the buttons"), exactly like an outdated Telegram button.
STALE_PRESS = "stale"


def _chat_pattern(demo: bool) -> str:
    """Production serves residents' random-token chats only; the demo also people's chats."""
    token = r"r-[A-Za-z0-9_-]{20,62}"
    return f"(?:{token}|p-[A-Za-z0-9._-]{{1,60}})" if demo else token


@dataclass
class _Upload:
    data: bytes | None  # None: over the size limit, only its size is known
    size: int


class WebPhotos:
    """The PhotoSaver of uploads: their bytes wait in memory and are stored inside the turn,
    so a refused file gets the turn's localized answer and a failed turn stores no row."""

    def __init__(self, media: MediaStore) -> None:
        self.media = media
        self._held: dict[str, _Upload] = {}

    def hold(self, data: bytes | None, size: int) -> str:
        file_id = "upload-" + secrets.token_hex(8)
        self._held[file_id] = _Upload(data, size)
        return file_id

    def release(self, file_id: str) -> None:
        self._held.pop(file_id, None)

    async def save(self, uow: Any, channel: str, ref: PhotoRef) -> int:
        upload = self._held.get(ref.file_id)
        if upload is None or upload.size == 0:
            raise MediaRefused("empty_file", "the upload is empty or no longer held")
        if upload.data is None:
            limit = self.media.max_bytes / 1048576
            limit_mb = int(limit) if limit.is_integer() else round(limit, 1)
            raise MediaRefused(
                "too_large", f"upload of {upload.size} bytes", size=upload.size, limit_mb=limit_mb
            )
        row = await self.media.save_photo(
            uow.session, upload.data, now=uow.clock.now(), channel=CHANNEL, channel_file_id=None
        )
        return row.id


class _Refused(Exception):
    """A request answered with a localized notice instead of being run."""

    def __init__(self, status: int, label: str) -> None:
        super().__init__(label)
        self.status = status
        self.label = label


class WebChat:
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
        self._static_version = {
            name: hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
            for name in STATIC_FILES
        }

    # Routes ----------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        chat = "/chat/{chat_id:" + _chat_pattern(self.demo) + "}"
        routes = [
            web.get("/r", self.start_page, name="webchat.start"),
            web.post("/r", self.start_chat),
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

    # Delivery --------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Deliver forever; woken at once by new work, otherwise every `idle_seconds`."""
        while True:
            try:
                delivered = await self.deliver_pending()
            except Exception:  # a database hiccup must not stop the channel
                log.exception("web chat delivery failed")
                delivered = 0
            if delivered:
                continue  # there may be more than one batch waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle_seconds)
            self._wake.clear()

    async def deliver_pending(self, limit: int = 500) -> int:
        """Move due web outbox rows into web_messages (marking them sent, in one transaction),
        oldest first, then tell the open chats; returns how many were delivered."""
        async with self._deliver_lock:
            now = self.app.clock.now()
            delivered: list[str] = []
            async with self.app.uow() as uow:
                store = uow.webchat
                waiting: set[str] = set()
                for row in await store.pending(limit):
                    if row.chat_id in waiting or row.next_attempt_at > now:
                        waiting.add(row.chat_id)  # keep the order within a chat
                        continue
                    row_id, chat_id, attempts, case = (
                        row.id,
                        row.chat_id,
                        row.attempts,
                        row.case_number,
                    )
                    try:
                        moved = await store.deliver_alone(row, now)
                    except Exception as exc:
                        if is_transient(exc):
                            raise  # the database is away: the whole batch waits for it
                        # One row no message can be made of fails alone; the rest go on.
                        log.error("web chat: outbox row %s to %s cannot be delivered", row_id,
                                  chat_id, exc_info=True)  # fmt: skip
                        reason = f"unreadable message: {type(exc).__name__}: {exc}"[:500]
                        await store.fail(row_id, attempts, case, reason, now)
                        continue
                    if moved is not None:
                        delivered.append(chat_id)
                await uow.commit()
        for chat_id in set(delivered):
            self._notify(chat_id)
        return len(delivered)

    def _notify(self, chat_id: str) -> None:
        for listener in self._listeners.get(chat_id, ()):
            listener.set()

    async def close(self) -> None:
        """End the live streams, so a stopping server does not wait for browsers."""
        self._closing = True
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.set()

    async def link_people(self) -> None:
        """Demo: every person of the org file gets a web chat, so notifications reach it."""
        async with self.app.uow() as uow:
            added = await uow.webchat.link_people(self.app.clock.now())
            await uow.commit()
        if added:
            log.info("web chat demo: %s people got a chat", added)

    # Pages -----------------------------------------------------------------------------------

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
        if not self.guard.check(request, "pick", _field(form, "csrf")):
            return self._refusal(request, _Refused(403, "csrf_refused"))
        code = _field(form, "person")
        if code:
            chat_id = person_chat_id(code)
            async with self.app.uow.reading() as uow:
                person = await uow.webchat.person_by_code(code)
            if chat_id is None or person is None:
                return self._refusal(request, _Refused(404, "unknown_person"))
            await self.link_people()
            # The first visit says hello (and shows a resident's menu), like /start would.
            await self._take(chat_id, "start", None, self._locale(request), text="/start")
        else:
            chat_id = await self._new_resident(request, _field(form, "grid"))
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
        if not self.guard.check(request, "start", _field(form, "csrf")):
            return self._refusal(request, _Refused(403, "csrf_refused"))
        return self._open(request, await self._new_resident(request, _field(form, "grid")))

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
        chat_id = await self._chat(request)
        async with self.app.uow.reading() as uow:
            store = uow.webchat
            rows = await store.history(chat_id, limit=HISTORY_PAGE)
            owner = await store.person_name(chat_id)
        views = [message_view(row, self._photo_url(request, chat_id)) for row in rows]
        browser = self.guard.browser(request)
        csrf = self.guard.token(browser, "chat:" + chat_id)
        reply_to = request.query.get("reply_to", "")
        replying = next((v for v in views if str(v["id"]) == reply_to), None)
        urls = {
            name: self._url(request, f"webchat.{name}", chat_id=chat_id)
            for name in ("send", "press", "events", "history", "chat")
        }
        config = {
            "chat": chat_id, "csrf": csrf, "urls": urls, "last": rows[-1].id if rows else 0,
            "keyboard": keyboard_state(views),
        }  # fmt: skip
        return self._page(
            request, "chat.html.j2", browser=browser, chat_id=chat_id, messages=views, owner=owner,
            keyboard=config["keyboard"], urls=urls, csrf=csrf, config=config,
            nonce=secrets.token_hex(6), replying=replying,
            resident_link=chat_id.startswith(TOKEN_PREFIX),
            link=self._public_link(request, urls["chat"]),
        )  # fmt: skip

    def _public_link(self, request: web.Request, path: str) -> str:
        base = self.app.settings.web.public_url
        if base:
            return base.rstrip("/") + path
        return str(request.url.with_path(path).with_query(None))

    def _photo_url(self, request: web.Request, chat_id: str) -> Callable[[str], str]:
        route = request.app.router["webchat.photo"]
        return lambda sha: str(route.url_for(chat_id=chat_id, sha=sha))

    async def history(self, request: web.Request) -> web.StreamResponse:
        """The chat's messages after ?after=ID as JSON (what the page's script catches up with)."""
        chat_id = await self._chat(request)
        after = _int(request.query.get("after"))
        async with self.app.uow.reading() as uow:
            rows = await uow.webchat.history(chat_id, after=after, limit=HISTORY_PAGE)
        url = self._photo_url(request, chat_id)
        return web.json_response(
            {"messages": [message_view(row, url) for row in rows]}, headers=PAGE_HEADERS
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: each message after Last-Event-ID (or ?after=), then new ones live."""
        chat_id = await self._chat(request)
        last = _int(request.headers.get("Last-Event-ID") or request.query.get("after"))
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
        url = self._photo_url(request, chat_id)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing:
                listener.clear()  # before reading, so a delivery during the read is not missed
                async with self.app.uow.reading() as uow:
                    rows = await uow.webchat.history(chat_id, after=last, limit=100)
                for row in rows:
                    data = json.dumps(message_view(row, url), ensure_ascii=False)
                    await response.write(f"id: {row.id}\nevent: message\ndata: {data}\n\n".encode())
                    last = row.id
                if len(rows) == 100:
                    continue
                try:
                    await asyncio.wait_for(listener.wait(), self.keepalive_seconds)
                except TimeoutError:
                    # Also the moment to notice what another process delivered.
                    await response.write(b": keepalive\n\n")
        except ConnectionResetError:
            pass  # the browser went away; it reconnects with Last-Event-ID
        finally:
            self._listeners[chat_id].discard(listener)
            if not self._listeners[chat_id]:
                del self._listeners[chat_id]
        return response

    async def photo(self, request: web.Request) -> web.StreamResponse:
        """A photo this chat was sent (the location-free copy); nothing else is served."""
        chat_id = await self._chat(request)
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

    # What the user does ----------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.StreamResponse:
        """Text (optionally replying to a message), photos, a location or a phone number."""
        chat_id = await self._chat(request)
        try:
            if request.content_type.startswith("multipart/"):
                await self._send_multipart(request, chat_id)
            else:
                form = await request.post()
                fields = {name: _field(form, name) for name in form if name != "photo"}
                await self._send_fields(request, chat_id, self._checked(request, chat_id, fields))
        except _Refused as refused:
            return self._refusal(request, refused)
        return self._done(request, chat_id)

    async def _send_multipart(self, request: web.Request, chat_id: str) -> None:
        """Fields first, then each photo as it arrives: one photo in memory at a time."""
        reader = await request.multipart()
        fields: dict[str, str] = {}
        checked: dict[str, str] | None = None
        count = 0
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is None:
                value = await _read_field(part)
                if checked is None and part.name:
                    fields[part.name] = value
                continue
            if checked is None:
                checked = self._checked(request, chat_id, fields)
            data, size = await self._read_file(part)
            if not part.filename and size == 0:
                continue  # a form's empty file box
            count += 1
            if count > FILES_PER_POST:
                continue
            await self._send_photo(request, chat_id, checked, data, size, part.filename, count)
        if checked is None:
            await self._send_fields(request, chat_id, self._checked(request, chat_id, fields))
        elif count == 0:
            await self._send_fields(request, chat_id, checked)

    async def _read_file(self, part: BodyPartReader) -> tuple[bytes | None, int]:
        """The file's bytes, or None and its size when it is over the media store's limit."""
        limit = self.app.media.max_bytes
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(256 * 1024):
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            else:
                chunks.clear()  # keep counting to say how big it was, but keep nothing
                if size > 4 * limit:
                    raise _Refused(413, "upload_too_large")
        return (b"".join(chunks) if size <= limit else None), size

    def _checked(
        self, request: web.Request, chat_id: str, fields: dict[str, str]
    ) -> dict[str, str]:
        if not self.guard.check(request, "chat:" + chat_id, fields.get("csrf")):
            raise _Refused(403, "csrf_refused")
        if not KEY.fullmatch(fields.get("key", "")):
            raise _Refused(400, "bad_request")
        return fields

    async def _reply_to(self, chat_id: str, fields: dict[str, str]) -> str | None:
        """The bot message being replied to, when it is one of this chat's."""
        wanted = _int(fields.get("reply_to"))
        if not wanted:
            return None
        async with self.app.uow.reading() as uow:
            row = await uow.webchat.message(chat_id, wanted)
        return str(row.id) if row is not None and row.direction == "out" else None

    async def _send_fields(self, request: web.Request, chat_id: str, f: dict[str, str]) -> None:
        locale = self._locale(request)
        key = f["key"]
        if f.get("latitude") or f.get("longitude"):
            lat, lon = _float(f.get("latitude")), _float(f.get("longitude"))
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise _Refused(400, "bad_location")
            record: dict[str, Any] = {
                "kind": "location",
                "location": [round(lat, 6), round(lon, 6)],
            }
            await self._take(chat_id, key, record, locale, location=Location(lat, lon))
            return
        if "phone" in f:
            phone = f["phone"].strip()
            if not PHONE.fullmatch(phone):
                raise _Refused(400, "bad_phone")
            record = {"kind": "contact", "phone": phone}
            await self._take(chat_id, key, record, locale, contact_phone=phone)
            return
        text = f.get("text", "").replace("\r\n", "\n").strip()[:TEXT_LIMIT]
        if not text:
            raise _Refused(400, "empty_message")
        reply_to = await self._reply_to(chat_id, f)
        record = {"kind": "text", "text": text, "reply_to_message_id": reply_to}
        await self._take(chat_id, key, record, locale, text=text, reply_to_message_id=reply_to)

    async def _send_photo(
        self, request: web.Request, chat_id: str, f: dict[str, str], data: bytes | None,
        size: int, name: str, index: int,
    ) -> None:  # fmt: skip
        """One uploaded file as one photo message; several in one post make an album, and
        the text goes with the first, as a caption does in Telegram."""
        file_id = self.photos.hold(data, size)
        caption = f.get("text", "").replace("\r\n", "\n").strip()[:TEXT_LIMIT] if index == 1 else ""
        reply_to = await self._reply_to(chat_id, f)
        record = {
            "kind": "photo", "text": caption, "file_name": storable(name)[:120],
            "reply_to_message_id": reply_to,
        }  # fmt: skip
        try:
            await self._take(
                chat_id, f"{f['key']}.{index}", record, self._locale(request),
                text=caption or None, photos=(PhotoRef(file_id, size=size),),
                media_group_id=f"w{f['key']}", reply_to_message_id=reply_to,
            )  # fmt: skip
        finally:
            self.photos.release(file_id)

    async def press(self, request: web.Request) -> web.StreamResponse:
        """A button under a bot message; only data that message offered is passed on."""
        chat_id = await self._chat(request)
        form = await request.post()
        fields = {name: _field(form, name) for name in form}
        try:
            checked = self._checked(request, chat_id, fields)
        except _Refused as refused:
            return self._refusal(request, refused)
        message_id = _int(checked.get("message_id"))
        data = checked.get("data", "")[:64]
        async with self.app.uow.reading() as uow:
            row = await uow.webchat.message(chat_id, message_id) if message_id else None
        label = _offered(row).get(data)
        if label is None:
            log.info("web chat %s pressed data its message did not offer", chat_id)
            data = STALE_PRESS
        record = {"kind": "press", "pressed": label} if label is not None else None
        await self._take(
            chat_id, checked["key"], record, self._locale(request), callback_data=data,
            callback_id=checked["key"], message_id=str(message_id) if row else None,
        )  # fmt: skip
        return self._done(request, chat_id)

    async def _take(
        self, chat_id: str, key: str, record: dict[str, Any] | None, locale: str, **fields: Any
    ) -> bool:
        """Record what the user did and run it through the conversations, once per key (a
        double submit repeats the key); then deliver the answers. False for a repeat.

        The history row, the processed mark and the turn commit in one transaction: a crash
        keeps all of them or none (the post is then unanswered and the page sends it again
        with the same key), never a message shown in the chat that the bot did not take."""
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
        taken = False

        async def record_in_turn(uow: Any) -> str | None:
            nonlocal taken
            taken = True
            if record is None:
                return None
            row = await WebChatStore(uow.session).add_incoming(chat_id, record, uow.clock.now())
            # A press keeps the id of the message whose button it was.
            return None if "message_id" in fields else str(row.id)

        async with lock:  # one chat's messages are handled in the order they came
            incoming = Incoming(
                channel=CHANNEL, chat_id=chat_id, chat_type="private", user_id=chat_id,
                user_name=Renderer(locale).macro(LABELS, "resident_name"), language=locale,
                update_key=f"w:{chat_id}:{key}", **fields,
            )  # fmt: skip
            await self.conversations.handle(incoming, record_in_turn)
        if not taken:
            log.info("web chat %s: %s already taken", chat_id, key)
            return False
        self._notify(chat_id)
        await self.deliver_pending()
        return True

    # Helpers ---------------------------------------------------------------------------------

    def _valid_chat(self, chat_id: str) -> bool:
        return re.fullmatch(_chat_pattern(self.demo), chat_id) is not None

    async def _chat(self, request: web.Request) -> str:
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
        return chat_id

    @staticmethod
    def _wants_json(request: web.Request) -> bool:
        return "application/json" in request.headers.get("Accept", "")

    def _done(self, request: web.Request, chat_id: str) -> web.StreamResponse:
        if self._wants_json(request):
            return web.json_response({"ok": True}, headers=PAGE_HEADERS)
        # A page without script posts the form and comes back to the chat's newest message.
        raise web.HTTPSeeOther(self._url(request, "webchat.chat", chat_id=chat_id) + "#end")

    def _refusal(self, request: web.Request, refused: _Refused) -> web.StreamResponse:
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


def _offered(row: WebMessageRow | None) -> dict[str, str]:
    """The buttons a bot message showed, data -> label; nothing for any other message."""
    if row is None or row.direction != "out":
        return {}
    return {
        str(b.get("data")): str(b.get("text"))
        for line in row.payload.get("buttons") or []
        for b in line
    }


async def _read_field(part: BodyPartReader) -> str:
    """A form field of a multipart post; fields are short, so a huge one is refused."""
    data = b""
    while chunk := await part.read_chunk(16 * 1024):
        data += chunk
        if len(data) > TEXT_LIMIT * 4 + 1024:
            raise _Refused(413, "bad_request")
    return storable(data.decode("utf-8", "replace"))


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return storable(value) if isinstance(value, str) else ""


def _int(value: str | None) -> int:
    text = (value or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else 0


def _float(value: str | None) -> float | None:
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if number == number else None  # NaN is not a place


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
