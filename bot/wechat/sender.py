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

import logging
from datetime import timedelta

import aiohttp

from bot.config import WeChatSettings
from bot.wechat.api import OfficialAccountApi, WeChatError
from bot.wechat.delivery import PARTS_DONE, QueueSender, Retry
from bot.wechat.inbound import CHANNEL
from bot.wechat.render import Part, custom_message, parts_of
from bot.wechat.template import template_message
from handlers.messages import Outgoing, outgoing_from_payload
from handlers.render import Renderer
from storage.db import SessionFactory
from storage.media import MediaStore
from storage.rows import OutboxRow
from storage.wechat import WeChatStore
from workflow.clock import Clock

__all__ = ["Retry", "WeChatSender"]

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=48)
OUT_OF_WINDOW = 45015
ACCOUNT_LIMITS = frozenset({45009, 45011})  # the whole account waits
CHAT_LIMITS = frozenset({45047})  # only this follower's chat waits
# What sending again cannot mend: an unknown or unfollowed openid, a blocked account, a bad
# template id, a message or a template field (47003) WeChat refuses.
PERMANENT = frozenset({40003, 40037, 43004, 43019, 45002, 47001, 47003, 40008})


class WeChatSender(QueueSender):
    """Delivers pending WeChat outbox rows; never two passes at once."""

    name = "WeChat"

    def __init__(
        self, api: OfficialAccountApi, store: WeChatStore, sessions: SessionFactory,
        media: MediaStore, clock: Clock, settings: WeChatSettings, *,
        public_url: str | None, locale: str, retry: Retry | None = None,
        batch_size: int = 200,
    ) -> None:  # fmt: skip
        super().__init__(sessions, CHANNEL, clock, retry=retry, batch_size=batch_size)
        self.api = api
        self.store = store
        self.media = media
        self.settings = settings
        self.public_url = public_url.rstrip("/") if public_url else None
        self.locale = locale

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
        if not await self._claim(row):
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
        body = template_message(
            row.chat_id, template_id, message, r, url, self.clock.now(),
            self.settings.template_fields,
        )  # fmt: skip
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
            return await self._pause(row, reason)
        if exc.errcode in CHAT_LIMITS:  # later rows of this chat wait behind this one
            return await self._retry_later(row, reason, None)
        return await self._retry_later(row, reason, None)
