"""The Bot API answers' classes, built once per process.

aiogram parses each answer as `Response[T]`, a pydantic generic class made on first use.
pydantic keeps the classes it made only weakly, so after a garbage collection the next call
of that method made the class again: about 9 ms each on the 2-core machine, every few photos
in bench_intake's profile (42 times in 500 updates) and every few sends in the sender's.
Holding them here for every method shuoshi calls makes them once.
"""

from __future__ import annotations

from typing import Any

from aiogram import methods
from aiogram.methods.base import Response

CALLED: tuple[type[methods.TelegramMethod[Any]], ...] = (
    methods.AnswerCallbackQuery,
    methods.DeleteWebhook,
    methods.EditMessageCaption,
    methods.EditMessageReplyMarkup,
    methods.EditMessageText,
    methods.GetFile,
    methods.GetMe,
    methods.GetUpdates,
    methods.SendMediaGroup,
    methods.SendMessage,
    methods.SendPhoto,
    methods.SetWebhook,
)

HELD = tuple(Response[method.__returning__] for method in CALLED)  # type: ignore[name-defined]
