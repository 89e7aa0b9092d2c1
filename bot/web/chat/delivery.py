"""Delivery of the outbox's web rows into the chats' history, and the live streams' wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable

from bot.app import App
from bot.web.chat.security import (
    Guard,
)
from bot.web.chat.uploads import WebPhotos
from handlers.conversation import Conversations
from storage.db import is_transient
from storage.wakeups import RESYNC, outbox_topic
from storage.webchat import CHANNEL

log = logging.getLogger(__name__)

OUTBOX_WEB = outbox_topic(CHANNEL)
CHAT_PREFIX = "web:"  # storage.wakeups.chat_topic
COALESCE = 0.05  # seconds: wake-ups this soon after a pass began wait for one more pass


class Delivery:
    """Moves due web outbox rows into web_messages and tells the open chats."""

    # Set by WebChat.__init__; declared here for the methods that use them.
    app: App
    demo: bool
    keepalive_seconds: float
    photos: WebPhotos
    conversations: Conversations
    guard: Guard
    _wake: asyncio.Event
    _deliver_lock: asyncio.Lock
    _chat_locks: weakref.WeakValueDictionary[str, asyncio.Lock]
    _listeners: dict[str, set[asyncio.Event]]
    _closing: bool
    _static_version: dict[str, str]
    _unsubscribe: Callable[[], None]

    def wake(self) -> None:
        self._wake.set()

    def on_wakeup(self, topic: str) -> None:
        """A commit here or in another process (storage/wakeups.py): web rows to deliver
        wake the delivery loop, a chat's new message wakes that chat's open streams."""
        if topic == RESYNC:  # the listener is back: what it missed is read again
            self.wake()
            for chat_id in list(self._listeners):
                self._notify(chat_id)
        elif topic == OUTBOX_WEB:
            self.wake()
        elif topic.startswith(CHAT_PREFIX):
            self._notify(topic[len(CHAT_PREFIX) :])

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Deliver forever; woken at once by new work, otherwise every `idle_seconds`."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                delivered = await self.deliver_pending()
            except Exception:  # a database hiccup must not stop the channel
                log.exception("web chat delivery failed")
                delivered = 0
            if delivered:
                continue  # there may be more than one batch waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_seconds):  # not wait_for (bot/runner.py)
                    await self._wake.wait()
                # Every process's commits wake every process: a burst shares one pass (as
                # the Telegram sender does); a chat's own answers were delivered by its post.
                await asyncio.sleep(max(0.0, started + COALESCE - loop.time()))
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
        self._unsubscribe()
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.set()
