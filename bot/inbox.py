"""Handling what a channel stored in the inbox: in order per chat, chats side by side, retried
with a backoff, failed with the reason. Channel-free (no aiogram): Telegram's long polling and
the WeChat callbacks both feed it. docs/reliability.md, "Intake".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.inbox import SqlInbox, StoredUpdate, backoff
from workflow.clock import Clock

log = logging.getLogger(__name__)

KEEP_DONE = timedelta(days=2)  # handled updates are kept this long, for operators
PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class InboxRetry:
    """When a stored update whose handling failed is tried again, and when it is given up."""

    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 300.0


Handler = Callable[[dict[str, Any]], Awaitable[None]]


class InboxProcessor:
    """Handles pending inbox rows: in update order within a chat, chats side by side.

    A row is marked done after its handler returned, in a transaction of its own: a crash in
    between handles it again, and the conversations' processed-once mark makes that a no-op.
    A row whose handling fails is retried with a backoff (holding back its own chat's later
    updates, never other chats) and, after `max_attempts`, marked failed with the reason.
    """

    def __init__(
        self, inbox: SqlInbox, clock: Clock, handle: Handler, *,
        retry: InboxRetry | None = None, concurrency: int = 8, batch_size: int = 500,
    ) -> None:  # fmt: skip
        self.inbox = inbox
        self.clock = clock
        self.handle = handle
        self.retry = retry or InboxRetry()
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()
        self._next_prune: datetime | None = None

    def wake(self) -> None:
        self._wake.set()

    async def process_pending(self) -> int:
        """One pass over the pending rows; returns how many were handled (done, or failed for
        good)."""
        async with self._pass:
            now = self.clock.now()
            by_chat: dict[str, list[StoredUpdate]] = {}
            for row in await self.inbox.pending(self.batch_size):
                by_chat.setdefault(row.chat_id, []).append(row)
            gate = asyncio.Semaphore(self.concurrency)
            results = await asyncio.gather(
                *(self._chat(rows, now, gate) for rows in by_chat.values())
            )
            await self._maybe_prune(now)
            return sum(results)

    async def _chat(self, rows: list[StoredUpdate], now: datetime, gate: asyncio.Semaphore) -> int:
        done = 0
        async with gate:
            for row in rows:
                if row.next_attempt_at > now or not await self._one(row):
                    break  # later updates of this chat wait for this one
                done += 1
        return done

    async def _one(self, row: StoredUpdate) -> bool:
        """Handle one row; True when it is done (or failed for good: the chat goes on)."""
        try:
            await self.handle(row.payload)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failures = row.attempts + 1
            now = self.clock.now()
            if failures >= self.retry.max_attempts:
                log.error("inbox update %s (chat %s) failed for good after %s attempts: %s",
                          row.update_id, row.chat_id, failures, reason)  # fmt: skip
                await self.inbox.fail(row, reason, now)
                return True
            wait = backoff(failures, self.retry.backoff_base, self.retry.backoff_cap)
            log.warning("inbox update %s (chat %s, attempt %s) failed: %s; next try in %ss",
                        row.update_id, row.chat_id, failures, reason,
                        wait.total_seconds(), exc_info=True)  # fmt: skip
            await self.inbox.retry(row, reason, now + wait)
            return False
        await self.inbox.done(row, self.clock.now())
        return True

    async def _maybe_prune(self, now: datetime) -> None:
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        with contextlib.suppress(Exception):  # housekeeping; the next hour tries again
            await self.inbox.prune(now - KEEP_DONE)

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Handle rows until cancelled: at once when woken, else when a retry is due, and at
        least every `idle_seconds`. The first pass handles what a crash left behind."""
        while True:
            try:
                handled = await self.process_pending()
                retry_at = await self.inbox.next_attempt_at(after=self.clock.now())
            except Exception:  # the database may be away for a moment; rows wait for us
                log.exception("inbox processing failed")
                handled, retry_at = 0, None
            if handled:
                continue
            delay = idle_seconds
            if retry_at is not None:
                delay = min(delay, max(0.0, (retry_at - self.clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.005)):  # not wait_for (bot/runner.py)
                    await self._wake.wait()
            self._wake.clear()
