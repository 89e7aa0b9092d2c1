"""The outbox as a channel's deliverer sees it: which rows are due, and what became of each.

One queue for every channel (Telegram, the web chat, the next ones): the deliverers decide how
fast and how to send; the SQL of choosing rows and recording their outcome lives here, so a
row sent, failed or retried means the same thing whichever channel carried it. How rows are
chosen, paced, retried and failed is described in docs/outbox.md.

Several deliverers (processes) may share one queue: a deliverer `claim`s a due row before it
sends it, which pushes the row's `next_attempt_at` to the claim's expiry in one conditional
UPDATE. The row then is not due for anyone else until the claimer records an outcome (sent,
failed, retry later, `release`) or, if it died, the claim expires. So two deliverers never
send one row, on PostgreSQL (the second UPDATE waits for the first, then finds the row no
longer due) and SQLite (one writer) alike; and a claimed row is still pending, so its chat's
later rows wait behind it: per-chat order holds across processes. docs/scaling.md.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.channel import SqlChannelStore
from storage.outbox import ANSWER
from storage.rows import CaseRow, MessageLinkRow, OutboxRow
from storage.sql import affected
from workflow.errors import NotFound

log = logging.getLogger(__name__)


FROZEN = "frozen"  # message_links.purpose of a message that can no longer be edited
REWRITTEN = ("text", "buttons")  # what a move changes in a card still waiting (Outbox.rewrite)


def is_edit(payload: dict[str, Any]) -> bool:
    """The row changes a message already sent (a card whose case moved on)."""
    return bool(payload.get("edit_message_id"))


def _due_heads_statement(answers_only: bool) -> Any:
    """Built once per shape (aliases cost milliseconds to make): every sender pass runs it."""
    earlier = aliased(OutboxRow)
    waiting_before = exists().where(
        earlier.chat_id == OutboxRow.chat_id,
        earlier.status == "pending",
        earlier.channel == OutboxRow.channel,
        earlier.id < OutboxRow.id,
    )
    query = select(OutboxRow).where(
        OutboxRow.status == "pending",
        OutboxRow.next_attempt_at <= bindparam("now"),
        OutboxRow.channel == bindparam("channel"),
        OutboxRow.id > bindparam("after"),
        ~waiting_before,
    )
    if answers_only:
        answer = aliased(OutboxRow)
        query = query.where(
            exists().where(
                answer.chat_id == OutboxRow.chat_id,  # (chat_id, status) index
                answer.status == "pending",
                answer.channel == OutboxRow.channel,
                answer.created_at >= bindparam("answers_since"),  # JSON only of fresh rows
                answer.payload[ANSWER].as_string().is_not(None),
            )
        )
    return query.order_by(OutboxRow.id).limit(bindparam("batch"))


_DUE_HEADS = {answers_only: _due_heads_statement(answers_only) for answers_only in (False, True)}


class OutboxRows:
    """One channel's outbox rows on the caller's session; the caller commits."""

    def __init__(self, session: AsyncSession, channel: str) -> None:
        self.session = session
        self.channel = channel

    async def pending(self, limit: int) -> list[OutboxRow]:
        """Pending rows, oldest first, due or not (the caller keeps each chat's order)."""
        rows = await self.session.execute(
            select(OutboxRow)
            .where(OutboxRow.channel == self.channel, OutboxRow.status == "pending")
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        return list(rows.scalars())

    async def due_heads(
        self, now: datetime, after: int, batch: int, *, answers_since: datetime | None = None
    ) -> list[OutboxRow]:
        """Due rows that are first in their chat's queue (no earlier row still pending), oldest
        first: a chat waiting for a retry holds back only itself.

        `answers_since`: only the heads of chats with an answer (ANSWER) written since then
        still pending. The head itself may be an older background row of that chat: priority
        picks which chat goes next, never the order within a chat."""
        params = {
            "now": now, "after": after, "batch": batch, "channel": self.channel,
            "answers_since": answers_since,
        }  # fmt: skip
        result = await self.session.execute(_DUE_HEADS[answers_since is not None], params)
        return list(result.scalars())

    async def claim(self, row_id: int, now: datetime, until: datetime) -> bool:
        """Take a due pending row for one delivery until `until`; False when it is not due
        any more (another deliverer claimed it, or it was sent, failed or rescheduled)."""
        claimed = await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == row_id,
                OutboxRow.channel == self.channel,
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=until)
        )
        return affected(claimed) == 1

    async def claim_many(self, row_ids: list[int], now: datetime, until: datetime) -> set[int]:
        """`claim` for several rows in one statement (one write transaction: a burst's answers
        are not each queued behind intake's writes); returns the ids it took."""
        if not row_ids:
            return set()
        claimed = await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(row_ids),
                OutboxRow.channel == self.channel,
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
            )
            .values(next_attempt_at=until)
            .returning(OutboxRow.id)
        )
        return set(claimed.scalars())

    async def release_many(
        self, row_ids: list[int], claimed_until: datetime, due: datetime
    ) -> None:
        """Due again at `due` (rows claimed together that did not start): only while each is
        still the claim that ended at `claimed_until`, never another's."""
        if not row_ids:
            return
        await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id.in_(row_ids),
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at == claimed_until,
            )
            .values(next_attempt_at=due)
        )

    async def release(self, row_id: int, claimed_until: datetime, now: datetime) -> None:
        """Due again at once (a multi-call message whose next call waits for the limits);
        only while it is still the claim that ended at `claimed_until`, never another's."""
        await self.session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.id == row_id,
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at == claimed_until,
            )
            .values(next_attempt_at=now)
        )

    async def next_retry_at(self, now: datetime) -> datetime | None:
        """When the earliest pending row that is not yet due becomes due; None: none waits."""
        result = await self.session.execute(
            select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at > now,
                OutboxRow.channel == self.channel,
            )
        )
        return result.scalar_one()

    async def fresh_callbacks(
        self, since: datetime, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Pending rows since `since` that answer a button press: (id, payload), oldest first."""
        rows = await self.session.execute(
            select(OutboxRow.id, OutboxRow.payload)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at >= since,  # implied; lets the index serve
                OutboxRow.created_at >= since,
                OutboxRow.channel == self.channel,
                OutboxRow.payload["callback_answer"].as_string().is_not(None),
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        return [(row_id, payload) for row_id, payload in rows.all()]

    async def all_pending(self) -> list[OutboxRow]:
        """Every pending row of the channel (to find the ones a query cannot read)."""
        rows = await self.session.execute(
            select(OutboxRow).where(
                OutboxRow.status == "pending", OutboxRow.channel == self.channel
            )
        )
        return list(rows.scalars())

    async def set_payload(self, row_id: int, payload: dict[str, Any]) -> None:
        """Replace a row's payload whatever its status (a callback answered)."""
        await self.session.execute(
            update(OutboxRow).where(OutboxRow.id == row_id).values(payload=payload)
        )

    async def save_progress(self, row_id: int, payload: dict[str, Any]) -> None:
        """A pending row with what is already sent noted in it (the deliverer's own keys, `_`
        first: `_parts_done`); the error cleared. The message itself stays as stored: the case
        may have moved since the deliverer read it, and its card been rewritten."""
        stored = await self._payload(row_id, lock=True)
        if stored is None:
            return
        notes = {key: value for key, value in payload.items() if key.startswith("_")}
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
            .values(payload={**stored, **notes}, error=None)
        )

    async def _payload(self, row_id: int, *, lock: bool = False) -> dict[str, Any] | None:
        query = select(OutboxRow.payload).where(OutboxRow.id == row_id)
        if lock:
            query = query.where(OutboxRow.status == "pending").with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def retry_later(
        self, row_id: int, attempts: int, error: str, next_attempt_at: datetime
    ) -> None:
        """Still pending, tried `attempts` times, next due at `next_attempt_at`."""
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
            .values(attempts=attempts, error=error, next_attempt_at=next_attempt_at)
        )

    async def mark_sent(self, row_id: int, attempts: int, now: datetime) -> bool:
        """Sent, if still pending (`attempts` = tries before this one); False when another
        deliverer already claimed it."""
        claimed = await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
            .values(status="sent", attempts=attempts + 1, error=None, sent_at=now)
        )
        return affected(claimed) == 1

    async def link(
        self, row: OutboxRow, message_id: str, now: datetime, *, caption: bool = False
    ) -> bool:
        """Replies to the posted message belong to the row's case (progress notes, reasons);
        False when the case is not there (the message still counts as sent). An edit posts
        nothing new: the message it changed keeps its link."""
        if not row.case_number or is_edit(row.payload):
            return True
        purpose = row.payload.get("purpose") or "message"
        try:
            await SqlChannelStore(self.session).link_message(
                self.channel, row.chat_id, message_id, row.case_number, purpose, now,
                caption=caption, context=row.payload.get("context"),
            )  # fmt: skip
        except NotFound:
            return False
        await self._edit_if_rewritten(row, message_id, now, caption=caption)
        return True

    async def _edit_if_rewritten(
        self, row: OutboxRow, message_id: str, now: datetime, *, caption: bool
    ) -> None:
        """The case moved while this row was on its way (read by the deliverer, then rewritten
        by the move: handlers/card_edits.py keep_cards_true): what went out is the old card, so
        the message just sent is edited to what the row says now."""
        stored = await self._payload(row.id)
        if stored is None or all(stored.get(k) == row.payload.get(k) for k in REWRITTEN):
            return
        edit = {key: value for key, value in stored.items() if not key.startswith("_")}
        edit.update(
            photos=[], reply_to_message_id=None, force_reply=False, keyboard=[],
            remove_keyboard=False, callback_answer=None, edit_message_id=message_id,
            edit_caption=caption,
            # Only the buttons of a rating change: its result's words stay.
            text="" if stored.get("text") == row.payload.get("text") else stored.get("text"),
        )  # fmt: skip
        edit.pop(ANSWER, None)  # a card kept true is nobody's answer
        await self.session.execute(
            insert(OutboxRow).values(
                channel=self.channel, chat_id=row.chat_id, payload=edit,
                case_number=row.case_number, person_id=row.person_id, status="pending",
                attempts=0, created_at=now, next_attempt_at=now,
            )
        )  # fmt: skip

    async def stop_editing(self, chat_id: str, message_id: str) -> None:
        """A message Telegram would not edit (too old, deleted) is not tried again: its link
        keeps finding the case for replies, under a purpose no edit looks for."""
        await self.session.execute(
            update(MessageLinkRow)
            .where(
                MessageLinkRow.channel == self.channel,
                MessageLinkRow.chat_id == chat_id,
                MessageLinkRow.message_id == message_id,
            )
            .values(purpose=FROZEN)
        )

    async def fail(
        self, row_id: int, attempts: int, case_number: str | None, reason: str, now: datetime,
        *, flag_case: bool = True,
    ) -> None:  # fmt: skip
        """Failed for good (`attempts` = tries before this one), with the reason operators
        read on the dashboard; the case is flagged in the same transaction so that a person
        reaches that party another way (not for a failed edit: the card was delivered, it
        only shows an older state, e.g. a message too old for Telegram to edit)."""
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
            .values(status="failed", attempts=attempts + 1, error=reason,
                    next_attempt_at=now)  # when it failed, for the dashboard
        )  # fmt: skip
        if case_number and flag_case:
            # A new version, so a handler holding the case unflagged cannot save over it.
            await self.session.execute(
                update(CaseRow)
                .where(CaseRow.number == case_number, CaseRow.delivery_failed.is_(False))
                .values(delivery_failed=True, version=CaseRow.version + 1)
            )
