"""The Telegram channel: aiogram updates -> channel-neutral Incoming; outbox rows -> Bot API."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers.conversation import Conversations
from handlers.messages import Incoming, Location, Outgoing, PhotoRef, outgoing_from_payload
from storage.channel import SqlChannelStore
from storage.media import MAX_PHOTO_BYTES, MediaRefused, MediaStore
from storage.rows import OutboxRow
from workflow.clock import Clock

log = logging.getLogger(__name__)

CHANNEL = "telegram"
UNSUPPORTED = ("sticker", "voice", "video", "video_note", "document", "audio", "animation")
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def incoming_from_message(message: Message) -> Incoming:
    """Everything a handler may need from a Telegram message, and nothing Telegram-specific."""
    user = message.from_user
    chat_id = str(message.chat.id)
    photos = tuple(
        PhotoRef(p.file_id, p.file_unique_id, p.file_size, p.width, p.height)
        for p in message.photo or ()
        if (p.file_size or 0) <= MAX_PHOTO_BYTES
    )
    unsupported = next((kind for kind in UNSUPPORTED if getattr(message, kind, None)), None)
    if message.photo and not photos:
        unsupported = "too_large"
    contact = message.contact
    return Incoming(
        channel=CHANNEL,
        chat_id=chat_id,
        chat_type=message.chat.type,
        user_id=str(user.id) if user else chat_id,
        user_name=user.full_name if user else "",
        language=user.language_code if user else None,
        message_id=str(message.message_id),
        # The same (chat, message) is processed once, however often Telegram delivers it.
        update_key=f"m:{chat_id}:{message.message_id}",
        text=message.text or message.caption,
        photos=photos,
        media_group_id=message.media_group_id,
        location=Location(message.location.latitude, message.location.longitude)
        if message.location
        else None,
        contact_phone=contact.phone_number if contact else None,
        contact_is_own=bool(contact and user and contact.user_id == user.id),
        reply_to_message_id=str(message.reply_to_message.message_id)
        if message.reply_to_message
        else None,
        unsupported=unsupported,
    )


def incoming_from_callback(callback: CallbackQuery) -> Incoming:
    user = callback.from_user
    message = callback.message
    chat_id = str(message.chat.id) if message else str(user.id)
    chat_type = message.chat.type if message else "private"
    return Incoming(
        channel=CHANNEL,
        chat_id=chat_id,
        chat_type=chat_type,
        user_id=str(user.id),
        user_name=user.full_name,
        language=user.language_code,
        message_id=str(message.message_id) if message else None,
        update_key=f"c:{callback.id}",
        callback_data=callback.data,
        callback_id=callback.id,
    )


class TelegramPhotos:
    """Downloads a photo with getFile into the media store; keeps Telegram's file id too."""

    def __init__(self, bot: Bot, media: MediaStore) -> None:
        self.bot = bot
        self.media = media

    async def save(self, uow: Any, channel: str, ref: PhotoRef) -> int:
        if ref.size is not None and ref.size > MAX_PHOTO_BYTES:
            raise MediaRefused("too_large", "photo over 20 MB", size=ref.size, limit_mb=20)
        try:
            file = await self.bot.get_file(ref.file_id)
        except TelegramBadRequest as exc:
            # Telegram refuses getFile over 20 MB; photo sizes do not always say so in advance.
            if "too big" in str(exc).lower():
                raise MediaRefused("too_large", str(exc), size=ref.size or 0, limit_mb=20) from exc
            raise MediaRefused("not_an_image", str(exc), reason="damaged") from exc
        if file.file_path is None:
            raise MediaRefused("not_an_image", "Telegram gave no file path", format=None)
        buffer = await self.bot.download_file(file.file_path)
        assert buffer is not None
        row = await self.media.save_photo(
            uow.session, buffer.getvalue(), now=uow.clock.now(), channel=channel,
            channel_file_id=ref.file_id,
        )  # fmt: skip
        return row.id


class TelegramChannel:
    """Routes updates to the conversations, one at a time per chat and user."""

    def __init__(self, conversations: Conversations, sender: OutboxSender) -> None:
        self.conversations = conversations
        self.sender = sender
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.router = Router(name="shuoshi")
        self.router.message.register(self.on_message)
        self.router.callback_query.register(self.on_callback)

    def dispatcher(self) -> Dispatcher:
        dp = Dispatcher()
        dp.include_router(self.router)
        return dp

    async def on_message(self, message: Message) -> None:
        await self._handle(incoming_from_message(message))

    async def on_callback(self, callback: CallbackQuery) -> None:
        await self._handle(incoming_from_callback(callback))

    async def _handle(self, incoming: Incoming) -> None:
        # Albums arrive as several updates at once: one lock per (chat, user) keeps order.
        async with self._locks[(incoming.chat_id, incoming.user_id)]:
            await self.conversations.handle(incoming)
        self.sender.wake()


class OutboxSender:
    """Delivers pending outbox rows in order per chat; failures are kept, never lost."""

    def __init__(
        self, bot: Bot, sessions: async_sessionmaker, media: MediaStore, clock: Clock
    ) -> None:
        self.bot = bot
        self.sessions = sessions
        self.media = media
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Deliver forever; woken at once by new work, otherwise every `idle_seconds`."""
        while True:
            try:
                await self.deliver_pending()
            except Exception:  # one bad row must not stop the sender
                log.exception("outbox delivery failed")
            try:
                await asyncio.wait_for(self._wake.wait(), idle_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def deliver_pending(self, limit: int = 200) -> int:
        """Send what is due, oldest first; returns how many rows were sent."""
        now = self.clock.now()
        async with self.sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(OutboxRow)
                        .where(OutboxRow.channel == CHANNEL, OutboxRow.status == "pending")
                        .order_by(OutboxRow.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        sent = 0
        blocked_chats: set[str] = set()
        for row in rows:
            if row.chat_id in blocked_chats:
                continue  # keep order within a chat: nothing after a message that must wait
            if row.next_attempt_at > now:
                blocked_chats.add(row.chat_id)
                continue
            outcome = await self._deliver(row)
            if outcome == "sent":
                sent += 1
            else:
                blocked_chats.add(row.chat_id)
        return sent

    async def _deliver(self, row: OutboxRow) -> str:
        message = outgoing_from_payload(row.payload)
        try:
            message_id = await self._send(row.chat_id, message, row.payload.get("callback_id"))
        except TelegramRetryAfter as exc:
            await self._mark(row, "pending", error=str(exc), delay=exc.retry_after)
            return "retry"
        except (TelegramForbiddenError, TelegramNotFound) as exc:
            await self._mark(row, "failed", error=str(exc))
            return "failed"
        except TelegramBadRequest as exc:
            if "chat not found" in str(exc).lower():
                await self._mark(row, "failed", error=str(exc))
                return "failed"
            await self._mark(row, "pending", error=str(exc), delay=min(60 * 2**row.attempts, 3600))
            return "retry"
        await self._mark(row, "sent", message_id=message_id)
        return "sent"

    async def _mark(
        self, row: OutboxRow, status: str, *, error: str | None = None, delay: float = 0,
        message_id: str | None = None,
    ) -> None:  # fmt: skip
        now = self.clock.now()
        async with self.sessions() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row.id)
                .values(
                    status=status,
                    attempts=row.attempts + 1,
                    error=error,
                    sent_at=now if status == "sent" else None,
                    next_attempt_at=now + timedelta(seconds=delay),
                )
            )
            if message_id and row.case_number:
                purpose = row.payload.get("purpose") or "message"
                await SqlChannelStore(session).link_message(
                    CHANNEL, row.chat_id, message_id, row.case_number, purpose, now
                )
            await session.commit()

    async def _send(self, chat_id: str, message: Outgoing, callback_id: str | None) -> str:
        """One outgoing message as Bot API calls; returns the id of the message with the text."""
        if callback_id:
            try:
                await self.bot.answer_callback_query(callback_id, text=message.callback_answer)
            except TelegramBadRequest:
                log.info("callback %s too old to answer", callback_id)
        markup = _markup(message)
        text = message.text[:TEXT_LIMIT]
        reply_to = (
            int(message.reply_to_message_id)
            if (message.reply_to_message_id or "").isdigit()
            else None
        )
        photos = [await self.media.read_public_sha(sha) for sha in message.photos[:10]]
        if len(photos) > 1:
            await self.bot.send_media_group(
                chat_id,
                [
                    InputMediaPhoto(media=BufferedInputFile(p, f"{i}.jpg"))
                    for i, p in enumerate(photos)
                ],
                reply_to_message_id=reply_to,
            )
        elif photos and len(text) <= CAPTION_LIMIT:
            sent = await self.bot.send_photo(
                chat_id, BufferedInputFile(photos[0], "photo.jpg"), caption=text,
                reply_markup=markup, reply_to_message_id=reply_to,
            )  # fmt: skip
            return str(sent.message_id)
        elif photos:
            await self.bot.send_photo(chat_id, BufferedInputFile(photos[0], "photo.jpg"))
        sent = await self.bot.send_message(
            chat_id, text, reply_markup=markup, reply_to_message_id=reply_to
        )
        return str(sent.message_id)


def _markup(message: Outgoing) -> Any:
    if message.request_contact or message.request_location:
        # A reply keyboard: the share button (label from the templates, as the keyboard's only
        # key) plus the message's buttons as plain keys, which the handlers accept as text.
        label = message.keyboard[0][0] if message.keyboard and message.keyboard[0] else "📍"
        share = KeyboardButton(
            text=label,
            request_contact=message.request_contact or None,
            request_location=message.request_location or None,
        )
        keys = [[KeyboardButton(text=b.text) for b in row] for row in message.buttons]
        return ReplyKeyboardMarkup(
            keyboard=[[share], *keys], resize_keyboard=True, one_time_keyboard=True
        )
    if message.buttons:
        return InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=b.text, callback_data=b.data) for b in row]
                for row in message.buttons
            ]
        )
    if message.force_reply:
        return ForceReply(selective=True)
    if message.keyboard:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=t) for t in row] for row in message.keyboard],
            resize_keyboard=True,
            is_persistent=True,
        )
    if message.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


def make_bot(token: str, api_base: str | None = None) -> Bot:
    """A Bot in HTML parse mode, talking to Telegram or to a local Bot API server."""
    session = None
    if api_base:
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
