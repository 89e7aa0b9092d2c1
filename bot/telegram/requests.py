"""What a Telegram call is made of: the calls one message takes, its keyboard and reply, and
which errors mean the same request will always fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
)
from aiogram.types import (
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from pydantic import ValidationError

from bot.telegram.adapter import CAPTION_LIMIT, TEXT_LIMIT
from handlers.messages import Outgoing

MAX_ALBUM = 10


@dataclass(frozen=True)
class Part:
    """One Bot API call of an outgoing message; `cost` is how many messages it posts."""

    kind: Literal["album", "photo", "text", "edit"]
    cost: int = 1
    caption: bool = False  # a photo carrying the text (and the buttons) as its caption


def message_parts(message: Outgoing) -> list[Part]:
    """The calls one message takes: text; photo with caption; photo, text; album, text; or
    one edit of a message already sent (it counts toward the limits like a message)."""
    if message.edit_message_id:
        return [Part("edit")]
    photos = message.photos[:MAX_ALBUM]
    if len(photos) > 1:
        return [Part("album", cost=len(photos)), Part("text")]
    if photos and len(message.text[:TEXT_LIMIT]) <= CAPTION_LIMIT:
        return [Part("photo", caption=True)]
    if photos:
        return [Part("photo"), Part("text")]
    return [Part("text")]


PERMANENT_ERRORS = (
    TelegramForbiddenError,
    TelegramBadRequest,
    TelegramMigrateToChat,
    TelegramEntityTooLarge,
)


# A message that cannot even be made into a request (text that is not UTF-8, a field of the
# wrong kind) fails the same way every time.
UNSENDABLE = (UnicodeError, TypeError, KeyError, ValidationError)


def is_permanent(exc: Exception) -> bool:
    """Telegram will answer the same request the same way: blocked, kicked, deactivated, chat
    not found, no rights, a message Telegram refuses (400) or a file too large (413); or the
    request cannot be built at all."""
    return isinstance(exc, PERMANENT_ERRORS + UNSENDABLE)


# Telegram's answer to an edit that changes nothing: the message already shows what we meant.
NOT_MODIFIED = "message is not modified"


def failure_reason(exc: Exception) -> str:
    """Telegram's own description when there is one: what operators read on the dashboard."""
    if isinstance(exc, TelegramMigrateToChat):
        return f"{exc.message} (the group is now chat {exc.migrate_to_chat_id})"
    if isinstance(exc, TelegramAPIError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def reply_parameters(message: Outgoing) -> ReplyParameters | None:
    """Reply to the user's message when there is one; if it was deleted, send anyway."""
    if not (message.reply_to_message_id or "").isdigit():
        return None
    return ReplyParameters(
        message_id=int(message.reply_to_message_id or 0), allow_sending_without_reply=True
    )


def markup(message: Outgoing) -> Any:
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


async def edit_message(bot: Bot, chat_id: str, message: Outgoing) -> str:
    """Change a message already sent (a card whose case moved on): its text or caption
    and its buttons, or only the buttons when the text stays (or would no longer fit a
    caption). A message Telegram will not edit (gone, or too old) fails alone."""
    target = message.edit_message_id or ""
    if not target.isdigit():
        raise TypeError(f"not a Telegram message id: {target!r}")
    keyboard = markup(message)  # None: the buttons go
    try:
        if not message.text or (message.edit_caption and len(message.text) > CAPTION_LIMIT):
            await bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=int(target), reply_markup=keyboard
            )
        elif message.edit_caption:
            await bot.edit_message_caption(
                chat_id=chat_id, message_id=int(target), caption=message.text,
                reply_markup=keyboard,
            )  # fmt: skip
        else:
            await bot.edit_message_text(
                text=message.text[:TEXT_LIMIT], chat_id=chat_id, message_id=int(target),
                reply_markup=keyboard,
            )  # fmt: skip
    except TelegramBadRequest as exc:
        if NOT_MODIFIED not in exc.message.lower():
            raise
    return target
