"""The Telegram channel: aiogram updates -> channel-neutral Incoming; outbox rows -> Bot API."""

from __future__ import annotations

import asyncio
import io
import logging
from collections import defaultdict
from typing import Any, Protocol

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
)
from aiogram.types import (
    CallbackQuery,
    Message,
)

import bot.telegram.responses  # noqa: F401  (the Bot API answers' classes, made once and held)
from handlers.conversation import Conversations
from handlers.messages import (
    Incoming,
    Location,
    PhotoRef,
)
from storage.media import MAX_PHOTO_BYTES, MediaRefused, MediaStore, StoredPhoto

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
        return await self.save_fetched(uow, await self.fetch(channel, ref))

    async def save_fetched(self, uow: Any, fetched: StoredPhoto) -> int:
        row = await self.media.add_photo_row(uow.session, fetched, now=uow.clock.now())
        return row.id

    async def fetch(self, channel: str, ref: PhotoRef) -> StoredPhoto:
        """Download, check and write the photo's files; no transaction needed (or held)."""
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
        buffer = io.BytesIO()
        await self.bot.download_file(file.file_path, destination=buffer)
        return await self.media.store_photo(
            buffer.getvalue(), channel=channel, channel_file_id=ref.file_id
        )


class Wakeable(Protocol):
    """The outbox sender, as the channel sees it: told when a turn may have queued messages."""

    def wake(self) -> None: ...


class TelegramChannel:
    """Routes updates to the conversations, one at a time per chat and user."""

    def __init__(self, conversations: Conversations, sender: Wakeable) -> None:
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


def make_bot(token: str, api_base: str | None = None) -> Bot:
    """A Bot in HTML parse mode, talking to Telegram or to a local Bot API server."""
    session = None
    if api_base:
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
