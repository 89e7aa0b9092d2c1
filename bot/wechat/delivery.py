"""The delivery loop the Official Account's and the WeCom app's senders share: rows taken from
the shared outbox queue (`storage/outbox_queue.py`) in order per chat, woken when rows are
queued or a retry is due, paused while the account's API quota is spent; what happens to a
failed row (retried with the `[outbox]` backoff, failed for good with the reason). The channel
says how one row is sent (`_deliver`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage.db import SessionFactory
from storage.inbox import backoff
from storage.outbox import ANSWER_WINDOW
from storage.outbox_calls import OutboxQueue
from storage.rows import OutboxRow
from workflow.clock import Clock

log = logging.getLogger(__name__)

PARTS_DONE = "_parts_done"  # payload key: the calls of a row already made (photos, text)
CLAIM = timedelta(seconds=30)  # a row is another sender's to take again after this
MAX_PASSES = 50  # due heads re-read per deliver_pending call (each sent row frees its chat)


@dataclass(frozen=True)
class Retry:
    """When a failed send is tried again (as the Telegram sender: [outbox] settings)."""

    max_attempts: int = 20
    backoff_base: float = 5.0
    backoff_cap: float = 900.0

    def delay(self, failures: int) -> float:
        return backoff(failures, self.backoff_base, self.backoff_cap).total_seconds()


class QueueSender(ABC):
    """Delivers a channel's pending outbox rows; never two passes at once."""

    name = "outbox"  # for the logs

    def __init__(
        self, sessions: SessionFactory, channel: str, clock: Clock, *,
        retry: Retry | None = None, batch_size: int = 200,
    ) -> None:  # fmt: skip
        self.queue = OutboxQueue(sessions, channel)
        self.clock = clock
        self.retry = retry or Retry()
        self.batch_size = batch_size
        self.paused_until: datetime | None = None
        self.wake_at: datetime | None = None
        self.may_send: Callable[[], bool] = lambda: True
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Deliver until cancelled: when woken, when a retry is due, at least every second."""
        while True:
            try:
                await self.deliver_pending()
            except Exception:  # the database may be away for a moment; rows wait for us
                log.exception("%s delivery failed", self.name)
                self.wake_at = None
            delay = idle_seconds
            if self.wake_at is not None:
                delay = min(delay, max(0.0, (self.wake_at - self.clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.005)):  # not wait_for (bot/runner.py)
                    await self._wake.wait()
            self._wake.clear()

    async def deliver_pending(self) -> int:
        """Send every row that may go now, in order per chat; returns how many were sent."""
        async with self._pass:
            sent = 0
            now = self.clock.now()
            for _ in range(MAX_PASSES):
                if not self.may_send() or self._paused(now):
                    break
                # Chats waiting for an answer to what their user just did go first.
                rows = await self.queue.answers_first(now, now - ANSWER_WINDOW, self.batch_size)
                progressed = 0
                for row in rows:
                    if not self.may_send() or self._paused(now):
                        break
                    outcome = await self._deliver(row)
                    sent += outcome == "sent"
                    progressed += outcome in ("sent", "failed")
                if not progressed:
                    break
            wakes = [t for t in (await self.queue.next_retry_at(now), self.paused_until) if t]
            self.wake_at = min(wakes) if wakes else None
            return sent

    @abstractmethod
    async def _deliver(self, row: OutboxRow) -> str:
        """One row: sent, failed, retry, or skipped (another sender has it)."""

    async def _claim(self, row: OutboxRow) -> bool:
        """Claimed before its first call, as the Telegram sender does: no second sender takes
        the row while this one is at it (the lease keeps it to one process; this holds
        without it too)."""
        now = self.clock.now()
        return await self.queue.claim(row.id, now, now + CLAIM)

    def _paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    async def _pause(self, row: OutboxRow, reason: str) -> str:
        """The account's quota is spent: every delivery waits, this row is retried after."""
        wait = self.retry.delay(row.attempts + 1)
        self.paused_until = self.clock.now() + timedelta(seconds=wait)
        log.warning("%s: API limit reached (%s); deliveries wait %gs", self.name, reason, wait)
        return await self._retry_later(row, reason, wait)

    async def _retry_later(self, row: OutboxRow, error: str, delay: float | None) -> str:
        failures = row.attempts + 1
        if failures >= self.retry.max_attempts:
            return await self._fail(row, f"gave up after {failures} attempts: {error}")
        wait = self.retry.delay(failures) if delay is None else delay
        log.info("%s row %s to %s (attempt %s): %s; again in %gs",
                 self.name, row.id, row.chat_id, failures, error, wait)  # fmt: skip
        await self.queue.retry_later(
            row.id, failures, error, self.clock.now() + timedelta(seconds=wait)
        )
        return "retry"

    async def _fail(self, row: OutboxRow, reason: str) -> str:
        await self.queue.fail(row, reason, self.clock.now())
        log.warning("%s row %s to %s (case %s) failed for good: %s", self.name, row.id,
                    row.chat_id, row.case_number or "-", reason)  # fmt: skip
        return "failed"

    async def _sent(self, row: OutboxRow, message_id: str | None = None) -> str:
        await self.queue.mark_sent(row, message_id or str(row.id), self.clock.now())
        return "sent"
