"""WeChat delivery of the outbox (rows of channel "wechat"): customer-service messages within
48 hours of the follower's last message, a template message linking to the case after.

Rows are taken from the shared outbox queue (`storage/outbox_queue.py`) in order per chat, as
the Telegram sender takes them: one row's parts (photos, then the text or menu) in order, its
progress saved between calls, so a crash repeats at most one call. WeChat's answers decide
what happens next:

- 45015 (the follower has not written for 48 hours): the template message instead; so also
  when our own record of their last message says the window is closed;
- 45009/45011 (the account's API quota) pause every delivery, 45047 (too many messages to one
  follower without a reply) holds back that chat, both with the backoff of Telegram's 429;
- the follower gone or unknown, a refused template: failed for good with the reason, the case
  flagged (the dashboard's failed deliveries); anything else is retried with a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from bot.config import WeChatSettings
from bot.wechat.api import OfficialAccountApi, WeChatError
from bot.wechat.inbound import CHANNEL
from bot.wechat.render import Part, custom_message, parts_of, template_message
from handlers.messages import Outgoing, outgoing_from_payload
from handlers.render import Renderer
from storage.db import SessionFactory
from storage.inbox import backoff
from storage.media import MediaStore
from storage.outbox_queue import OutboxQueue
from storage.rows import OutboxRow
from storage.wechat import WeChatStore
from workflow.clock import Clock

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=48)
OUT_OF_WINDOW = 45015
ACCOUNT_LIMITS = frozenset({45009, 45011})  # the whole account waits
CHAT_LIMITS = frozenset({45047})  # only this follower's chat waits
# What sending again cannot mend: an unknown or unfollowed openid, a blocked account, a bad
# template id or message the code made.
PERMANENT = frozenset({40003, 40037, 43004, 43019, 45002, 47001, 40008})
PARTS_DONE = "_parts_done"
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


class WeChatSender:
    """Delivers pending WeChat outbox rows; never two passes at once."""

    def __init__(
        self, api: OfficialAccountApi, store: WeChatStore, sessions: SessionFactory,
        media: MediaStore, clock: Clock, settings: WeChatSettings, *,
        public_url: str | None, locale: str, retry: Retry | None = None,
        batch_size: int = 200,
    ) -> None:  # fmt: skip
        self.api = api
        self.store = store
        self.queue = OutboxQueue(sessions, CHANNEL)
        self.media = media
        self.clock = clock
        self.settings = settings
        self.public_url = public_url.rstrip("/") if public_url else None
        self.locale = locale
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
                log.exception("WeChat delivery failed")
                self.wake_at = None
            delay = idle_seconds
            if self.wake_at is not None:
                delay = min(delay, max(0.0, (self.wake_at - self.clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.005))
            self._wake.clear()

    async def deliver_pending(self) -> int:
        """Send every row that may go now, in order per chat; returns how many were sent."""
        async with self._pass:
            sent = 0
            now = self.clock.now()
            for _ in range(MAX_PASSES):
                if not self.may_send() or self._paused(now):
                    break
                rows = await self.queue.due_heads(now, 0, self.batch_size)
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

    def _paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    async def _deliver(self, row: OutboxRow) -> str:
        """One row: sent, failed, retry, or skipped (another sender has it)."""
        try:
            message = outgoing_from_payload(row.payload)
        except Exception as exc:  # a payload no message can be made of fails alone
            return await self._fail(row, f"unreadable message: {exc}")
        parts = parts_of(message)
        if not parts or message.edit_message_id:
            # A toast for a pressed button, or an edit: WeChat shows neither (its messages
            # cannot be changed; handlers/notify.py writes no edits for it anyway).
            return await self._sent(row)
        # Claimed first, as the Telegram sender does: no second sender takes the row while
        # this one is at it (the lease keeps it to one process; this holds without it too).
        now = self.clock.now()
        if not await self.queue.claim(row.id, now, now + CLAIM):
            return "skipped"
        # Hints and template fields in the language the message itself was written in.
        r = Renderer(await self.store.language(row.chat_id) or self.locale)
        last = await self.store.last_inbound(row.chat_id)
        if last is None or self.clock.now() - last >= WINDOW:
            return await self._template(row, message, r)
        done = min(int(row.payload.get(PARTS_DONE) or 0), len(parts) - 1)
        for index in range(done, len(parts)):
            try:
                await self._send_part(row, message, parts[index], r)
            except WeChatError as exc:
                if exc.errcode == OUT_OF_WINDOW:
                    return await self._template(row, message, r)
                return await self._refused(row, exc)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                return await self._retry_later(row, f"{type(exc).__name__}: {exc}", None)
            if index + 1 < len(parts):
                payload = {**row.payload, PARTS_DONE: index + 1}
                await self.queue.save_progress(row.id, payload)
        return await self._sent(row)

    async def _send_part(self, row: OutboxRow, message: Outgoing, part: Part, r: Renderer) -> None:
        media_id = ""
        if part.kind == "image" and part.photo:
            media_id = await self.api.upload_image(await self.media.read_public_sha(part.photo))
        await self.api.send_custom(custom_message(row.chat_id, message, part, row.id, r, media_id))

    async def _template(self, row: OutboxRow, message: Outgoing, r: Renderer) -> str:
        """Outside the 48-hour window: a template message linking to the case, when the row
        is about a case and a template is configured; failed with the reason otherwise."""
        template_id = self._template_id(message.purpose)
        if not message.case_number:
            return await self._fail(row, "outside the 48-hour window (no case to link to)")
        if not template_id:
            return await self._fail(
                row, "outside the 48-hour window and no wechat.result_template_id is set"
            )
        url = None
        if self.public_url is not None:
            chat = await self.store.web_chat_of(row.chat_id, self.clock.now(), create=True)
            url = f"{self.public_url}/chat/{chat}" if chat else None
        body = template_message(row.chat_id, template_id, message, r, url, self.clock.now())
        try:
            await self.api.send_template(body)
        except WeChatError as exc:
            return await self._refused(row, exc)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return await self._retry_later(row, f"{type(exc).__name__}: {exc}", None)
        return await self._sent(row)

    def _template_id(self, purpose: str | None) -> str | None:
        result, rating = self.settings.result_template_id, self.settings.rating_template_id
        return (rating or result) if purpose == "rating" else (result or rating)

    async def _refused(self, row: OutboxRow, exc: WeChatError) -> str:
        reason = f"WeChat {exc.errcode}: {exc.errmsg}"
        if exc.errcode in PERMANENT:
            return await self._fail(row, reason)
        if exc.errcode in ACCOUNT_LIMITS:
            wait = self.retry.delay(row.attempts + 1)
            self.paused_until = self.clock.now() + timedelta(seconds=wait)
            log.warning("WeChat: API quota reached (%s); deliveries wait %gs", exc.errcode, wait)
            return await self._retry_later(row, reason, wait)
        if exc.errcode in CHAT_LIMITS:  # later rows of this chat wait behind this one
            return await self._retry_later(row, reason, None)
        return await self._retry_later(row, reason, None)

    async def _retry_later(self, row: OutboxRow, error: str, delay: float | None) -> str:
        failures = row.attempts + 1
        if failures >= self.retry.max_attempts:
            return await self._fail(row, f"gave up after {failures} attempts: {error}")
        wait = self.retry.delay(failures) if delay is None else delay
        log.info("WeChat row %s to %s (attempt %s): %s; again in %gs",
                 row.id, row.chat_id, failures, error, wait)  # fmt: skip
        await self.queue.retry_later(
            row.id, failures, error, self.clock.now() + timedelta(seconds=wait)
        )
        return "retry"

    async def _fail(self, row: OutboxRow, reason: str) -> str:
        await self.queue.fail(row, reason, self.clock.now())
        log.warning("WeChat row %s to %s (case %s) failed for good: %s", row.id, row.chat_id,
                    row.case_number or "-", reason)  # fmt: skip
        return "failed"

    async def _sent(self, row: OutboxRow) -> str:
        await self.queue.mark_sent(row, str(row.id), self.clock.now())
        return "sent"
