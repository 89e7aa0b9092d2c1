"""Telegram long polling through the inbox: no update is confirmed before it is stored.

aiogram's own polling moves the getUpdates offset (which confirms updates to Telegram) before
their handlers finished, so a crash lost them. Here the poller stores each batch in one
transaction and only then asks for the next one; the processor feeds stored updates to the
dispatcher, in order per chat, and on start handles whatever a crash left. docs/reliability.md,
"Intake", tells the whole story.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

# The processor is channel-free and lives in bot/inbox.py (WeChat's callbacks use it too).
from bot.inbox import KEEP_DONE, PRUNE_EVERY, Handler, InboxProcessor, InboxRetry
from storage.inbox import SqlInbox
from workflow.clock import Clock

log = logging.getLogger(__name__)

__all__ = ["KEEP_DONE", "PRUNE_EVERY", "InboxProcessor", "InboxRetry", "TelegramPoller"]

CHANNEL = "telegram"


def update_payload(update: Update) -> dict[str, Any]:
    """The update as Telegram sent it (field names as in the Bot API), to store as JSON."""
    return update.model_dump(mode="json", by_alias=True, exclude_none=True)


def chat_of(payload: dict[str, Any]) -> str:
    """The chat an update belongs to, so that one chat's updates (an album's photos, a press
    after a message) are handled in the order they came; "" when it has none."""
    for name, value in payload.items():
        if name == "update_id" or not isinstance(value, dict):
            continue
        chat = value.get("chat") or (value.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return str(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return f"user:{sender['id']}"
    return ""


class TelegramPoller:
    """getUpdates -> inbox. The offset moves past an update only after its row committed."""

    def __init__(
        self, bot: Bot, inbox: SqlInbox, clock: Clock, *, on_stored: Callable[[], None],
        allowed_updates: list[str] | None = None, timeout: int = 25, limit: int = 100,
    ) -> None:  # fmt: skip
        self.bot = bot
        self.inbox = inbox
        self.clock = clock
        self.on_stored = on_stored
        self.allowed_updates = allowed_updates
        self.timeout = timeout
        self.limit = limit
        self.offset: int | None = None
        self._started = False

    async def poll_once(self) -> int:
        """One getUpdates call and its batch stored; returns how many updates came."""
        if not self._started:
            last = await self.inbox.last_update_id()
            self.offset = None if last is None else last + 1
            self._started = True
        updates = await self.bot.get_updates(
            offset=self.offset, timeout=self.timeout, limit=self.limit,
            allowed_updates=self.allowed_updates,
        )  # fmt: skip
        if not updates:
            return 0
        batch = []
        for update in updates:
            payload = update_payload(update)
            batch.append((update.update_id, chat_of(payload), payload))
        await self.inbox.store(batch, self.clock.now())
        # Stored: the next call may confirm them to Telegram.
        self.offset = max(u.update_id for u in updates) + 1
        self.on_stored()
        return len(updates)

    async def run(self, error_pause: float = 5.0) -> None:
        """Poll until cancelled; a failed call or store is tried again with the same offset."""
        self._started = False  # another process may have polled since: ask the database
        failures = 0
        while True:
            try:
                await self.poll_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                pause = min(60.0, error_pause * 2 ** min(failures - 1, 4))
                log.warning("Telegram polling failed (%s); again in %gs", exc, pause)
                await asyncio.sleep(pause)


def dispatcher_handler(dp: Dispatcher, bot: Bot) -> Handler:
    """Feeds one stored update to the aiogram dispatcher, as polling or the webhook would."""

    async def handle(payload: dict[str, Any]) -> None:
        await dp.feed_update(bot, Update.model_validate(payload, context={"bot": bot}))

    return handle
