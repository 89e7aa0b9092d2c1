"""WeCom delivery of the outbox (rows of channel "wecom"): app messages to members (texts,
images, interactive template cards), card updates in place, and app group chat messages.

Rows come from the shared outbox queue through `QueueSender` (`bot/wechat/delivery.py`, as the
Official Account's): claimed before the first call, one row's parts (photos, then the text or
card) in order with the progress saved between calls. A card is sent with task id
`r<row id>-<created>`, which is also its message id in message_links, so the edit rows
`handlers/notify.py` writes when its case moves on name it; the edit spends the card's newest
response code (`update_template_card`). WeCom's answers decide the rest:

- 45009 (the app's API frequency or daily quota), 45033 (too many calls at once) and 45047
  pause every delivery with the `[outbox]` backoff; 40014/42001 (token) are refreshed once by
  the API client and the call made again;
- an unknown member or group chat, a message WeCom refuses: failed for good with the reason
  (the case flagged); an edit WeCom refuses: failed without flagging. An edit without a code
  left (spent by an earlier update, or over 72 hours old) is skipped: the card stays as it
  was (its buttons are checked when pressed);
- anything else (network, 5xx, -1 busy) is retried with a backoff.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import aiohttp

from bot.wechat.client import WeChatError
from bot.wechat.delivery import PARTS_DONE, QueueSender, Retry
from bot.wecom.api import WeComApi
from bot.wecom.render import (
    Part,
    card_message,
    image_message,
    parts_of,
    template_card,
    text_message,
)
from handlers.messages import Outgoing, outgoing_from_payload
from handlers.render import Renderer
from storage.db import SessionFactory
from storage.media import MediaStore
from storage.rows import OutboxRow
from storage.wechat import WeChatStore
from storage.wecom import APPCHAT_PREFIX, CHANNEL, WeComStore
from workflow.clock import Clock

log = logging.getLogger(__name__)

LIMITS = frozenset({45009, 45033, 45047})  # the app waits
# What sending again cannot mend: no such member, group chat or media, a message WeCom
# refuses as made (too long, bad card), the app not visible to the member.
PERMANENT = frozenset({40003, 40008, 40007, 40058, 44004, 60011, 81013, 86003, 86004, 301002})
CODE_LIFETIME = timedelta(hours=72)


def task_id_of(row: OutboxRow) -> str:
    """The card's task id: WeCom refuses one the app used before, so the row's creation time
    goes with its id (a database restored or started afresh numbers rows from 1 again)."""
    return f"r{row.id}-{int(row.created_at.timestamp() * 1000):x}"


class WeComSender(QueueSender):
    """Delivers pending WeCom outbox rows; never two passes at once."""

    name = "WeCom"

    def __init__(
        self, api: WeComApi, store: WeChatStore, cards: WeComStore, sessions: SessionFactory,
        media: MediaStore, clock: Clock, *, locale: str, retry: Retry | None = None,
        batch_size: int = 200,
    ) -> None:  # fmt: skip
        super().__init__(sessions, CHANNEL, clock, retry=retry, batch_size=batch_size)
        self.api = api
        self.store = store
        self.cards = cards
        self.media = media
        self.locale = locale

    async def _deliver(self, row: OutboxRow) -> str:
        try:
            message = outgoing_from_payload(row.payload)
        except Exception as exc:  # a payload no message can be made of fails alone
            return await self._fail(row, f"unreadable message: {exc}")
        group = row.chat_id.startswith(APPCHAT_PREFIX)
        if message.edit_message_id:
            if group or not str(message.edit_message_id).startswith("r"):
                return await self._sent(row)  # a text is final: only cards can change
            return await self._edit(row, message)
        parts = parts_of(message, group=group)
        if not parts:  # a toast for a pressed button: WeCom shows none
            return await self._sent(row)
        if not await self._claim(row):
            return "skipped"
        r = Renderer(await self.store.language(row.chat_id) or self.locale)
        done = min(int(row.payload.get(PARTS_DONE) or 0), len(parts) - 1)
        for index in range(done, len(parts)):
            try:
                await self._send_part(row, message, parts[index], r, group)
            except WeChatError as exc:
                return await self._refused(row, exc)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                return await self._retry_later(row, f"{type(exc).__name__}: {exc}", None)
            if index + 1 < len(parts):
                payload = {**row.payload, PARTS_DONE: index + 1}
                await self.queue.save_progress(row.id, payload)
        cards = any(p.kind == "card" for p in parts)
        return await self._sent(row, task_id_of(row) if cards else None)

    async def _send_part(
        self, row: OutboxRow, message: Outgoing, part: Part, r: Renderer, group: bool
    ) -> None:
        to = row.chat_id.removeprefix(APPCHAT_PREFIX)
        send = self.api.appchat_send if group else self.api.send
        if part.kind == "image" and part.photo:
            media_id = await self.api.upload_image(await self.media.read_public_sha(part.photo))
            await send(image_message(to, media_id, group=group))
        elif part.kind == "card":
            task_id = task_id_of(row)
            answer = await self.api.send(card_message(to, message, task_id, r))
            code = answer.get("response_code")
            if isinstance(code, str) and code:
                await self.cards.card_code(task_id, to, code, self.clock.now())
        else:
            await send(text_message(to, message, r, group=group))

    async def _edit(self, row: OutboxRow, message: Outgoing) -> str:
        """The card as its case is now, in place of the one the member has."""
        task_id = str(message.edit_message_id)
        found = await self.cards.code_of(task_id)
        if found is None or self.clock.now() - found[2] >= CODE_LIFETIME:
            # WeCom allows one update per code: a card updated since its member last pressed
            # it stays as it is (its buttons were already taken off, or are checked when
            # pressed). Expected, so not a failure on the dashboard.
            log.info("WeCom card %s to %s: no update code left; stays as it is", task_id,
                     row.chat_id)  # fmt: skip
            return await self._sent(row)
        if not await self._claim(row):
            return "skipped"
        userid, code, _ = found
        r = Renderer(await self.store.language(row.chat_id) or self.locale)
        try:
            await self.api.update_card(userid, code, template_card(message, task_id, r))
        except WeChatError as exc:
            return await self._refused(row, exc)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return await self._retry_later(row, f"{type(exc).__name__}: {exc}", None)
        await self.cards.spend(task_id, code)
        return await self._sent(row)

    async def _refused(self, row: OutboxRow, exc: WeChatError) -> str:
        reason = f"WeCom {exc.errcode}: {exc.errmsg}"
        if exc.errcode in LIMITS:
            return await self._pause(row, reason)
        if exc.errcode in PERMANENT or row.payload.get("edit_message_id"):
            return await self._fail(row, reason)
        return await self._retry_later(row, reason, None)
