"""What a browser sends (text, photos, location, phone, button presses), taken once per key
and run through the conversations in the same transaction as its history row."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import BodyPartReader, web

from bot.web.chat.constants import (
    FILES_PER_POST,
    KEY,
    LABELS,
    PHONE,
    STALE_PRESS,
    TEXT_LIMIT,
)
from bot.web.chat.render import quote_of
from bot.web.chat.requests import (
    ChatAt,
    ChatRequests,
    Refused,
    as_float,
    form_field,
    offered_buttons,
    query_int,
    read_field,
)
from handlers.messages import Incoming, Location, PhotoRef, storable
from handlers.render import Renderer
from storage.webchat import (
    CHANNEL,
    WebChatStore,
)

log = logging.getLogger(__name__)


class Inbound(ChatRequests):
    """The routes that take input: send (form or multipart) and press."""

    async def send(self, request: web.Request) -> web.StreamResponse:
        return await self.send_to(request, await self._chat(request))

    async def send_to(self, request: web.Request, at: ChatAt) -> web.StreamResponse:
        """Text (optionally replying to a message), photos, a location or a phone number."""
        chat_id = at.chat_id
        try:
            if request.content_type.startswith("multipart/"):
                await self._send_multipart(request, at)
            else:
                form = await request.post()
                fields = {name: form_field(form, name) for name in form if name != "photo"}
                await self._send_fields(request, chat_id, self._checked(request, at, fields))
        except Refused as refused:
            return self._refusal(request, refused)
        return self._done(request, at)

    async def _send_multipart(self, request: web.Request, at: ChatAt) -> None:
        """Fields first, then each photo as it arrives: one photo in memory at a time."""
        chat_id = at.chat_id
        reader = await request.multipart()
        fields: dict[str, str] = {}
        checked: dict[str, str] | None = None
        count = 0
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is None:
                value = await read_field(part)
                if checked is None and part.name:
                    fields[part.name] = value
                continue
            if checked is None:
                checked = self._checked(request, at, fields)
            data, size = await self._read_file(part)
            if not part.filename and size == 0:
                continue  # a form's empty file box
            count += 1
            if count > FILES_PER_POST:
                continue
            await self._send_photo(request, chat_id, checked, data, size, part.filename, count)
        if checked is None:
            await self._send_fields(request, chat_id, self._checked(request, at, fields))
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
                    raise Refused(413, "upload_too_large")
        return (b"".join(chunks) if size <= limit else None), size

    def _checked(self, request: web.Request, at: ChatAt, fields: dict[str, str]) -> dict[str, str]:
        if not self.guard.check(request, at.scope, fields.get("csrf")):
            raise Refused(403, "csrf_refused")
        if not KEY.fullmatch(fields.get("key", "")):
            raise Refused(400, "bad_request")
        return fields

    async def _reply_to(self, chat_id: str, fields: dict[str, str]) -> tuple[str | None, str]:
        """The bot message being replied to, when it is one of this chat's, and the words the
        reply quotes from it (the page shows them above the reply, not an internal id)."""
        wanted = query_int(fields.get("reply_to"))
        if not wanted:
            return None, ""
        async with self.app.uow.reading() as uow:
            row = await uow.webchat.message(chat_id, wanted)
        if row is None or row.direction != "out":
            return None, ""
        return str(row.id), quote_of(row)

    async def _send_fields(self, request: web.Request, chat_id: str, f: dict[str, str]) -> None:
        locale = self._locale(request)
        key = f["key"]
        if f.get("latitude") or f.get("longitude"):
            lat, lon = as_float(f.get("latitude")), as_float(f.get("longitude"))
            if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise Refused(400, "bad_location")
            record: dict[str, Any] = {
                "kind": "location",
                "location": [round(lat, 6), round(lon, 6)],
            }
            await self._take(chat_id, key, record, locale, location=Location(lat, lon))
            return
        if "phone" in f:
            phone = f["phone"].strip()
            if not PHONE.fullmatch(phone):
                raise Refused(400, "bad_phone")
            record = {"kind": "contact", "phone": phone}
            await self._take(chat_id, key, record, locale, contact_phone=phone)
            return
        text = f.get("text", "").replace("\r\n", "\n").strip()[:TEXT_LIMIT]
        if not text:
            raise Refused(400, "empty_message")
        reply_to, quote = await self._reply_to(chat_id, f)
        record = {
            "kind": "text", "text": text, "reply_to_message_id": reply_to, "reply_quote": quote,
        }  # fmt: skip
        await self._take(chat_id, key, record, locale, text=text, reply_to_message_id=reply_to)

    async def _send_photo(
        self, request: web.Request, chat_id: str, f: dict[str, str], data: bytes | None,
        size: int, name: str, index: int,
    ) -> None:  # fmt: skip
        """One uploaded file as one photo message; several in one post make an album, and
        the text goes with the first, as a caption does in Telegram."""
        file_id = self.photos.hold(data, size)
        caption = f.get("text", "").replace("\r\n", "\n").strip()[:TEXT_LIMIT] if index == 1 else ""
        reply_to, quote = await self._reply_to(chat_id, f)
        record = {
            "kind": "photo", "text": caption, "file_name": storable(name)[:120],
            "reply_to_message_id": reply_to, "reply_quote": quote,
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
        return await self.press_in(request, await self._chat(request))

    async def press_in(self, request: web.Request, at: ChatAt) -> web.StreamResponse:
        """A button under a bot message; only data that message offered is passed on."""
        chat_id = at.chat_id
        form = await request.post()
        fields = {name: form_field(form, name) for name in form}
        try:
            checked = self._checked(request, at, fields)
        except Refused as refused:
            return self._refusal(request, refused)
        message_id = query_int(checked.get("message_id"))
        data = checked.get("data", "")[:64]
        async with self.app.uow.reading() as uow:
            row = await uow.webchat.message(chat_id, message_id) if message_id else None
        label = offered_buttons(row).get(data)
        if label is None:
            log.info("web chat %s pressed data its message did not offer", chat_id)
            data = STALE_PRESS
        record = {"kind": "press", "pressed": label} if label is not None else None
        await self._take(
            chat_id, checked["key"], record, self._locale(request), callback_data=data,
            callback_id=checked["key"], message_id=str(message_id) if row else None,
        )  # fmt: skip
        return self._done(request, at)

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
            for photo in fields.get("photos", ()):
                self.photos.shown_in(photo.file_id, row.id)
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

    async def link_people(self) -> None:
        """Demo: every person of the org file gets a web chat, so notifications reach it, and
        is greeted at once (as an invite's /start does in Telegram): the greeting comes before
        any case card that reaches the chat later, not after it when the person is picked."""
        async with self.app.uow() as uow:
            added = await uow.webchat.link_people(self.app.clock.now())
            await uow.commit()
        if added:
            log.info("web chat demo: %s people got a chat", len(added))
        for chat_id in added:
            await self._take(chat_id, "start", None, self.app.settings.locale, text="/start")
