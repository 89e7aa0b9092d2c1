"""Outbox writer: messages become rows in the same transaction as the change that caused them.

Also the read side operators need: the deliveries that failed for good (blocked bot, chat gone,
retries exhausted), newest first, for the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from storage.rows import OutboxRow, PersonRow
from storage.sql import table_of
from storage.wakeups import announce, outbox_topic
from workflow.clock import Clock, ensure_aware
from workflow.ports import OutgoingMessage

# payload key of a row that answers what its chat's user just did (handlers/conversation.py
# `_finish`): its chat is served ahead of chats with only background rows (notifications to
# others, reminders, digests), so the person who is waiting is not queued behind them.
ANSWER = "answer"
# An answer older than this goes with the rest: nobody is watching for it any more, and the
# query looks into the JSON of recent rows only.
ANSWER_WINDOW = timedelta(seconds=60)
SNIPPET_CHARS = 120  # enough of a message's text for an operator to recognise it


_INSERT = insert(table_of(OutboxRow))
_PENDING = "outbox_pending"  # the session.info key of the rows not yet written


class SqlOutbox:
    """Rows are kept on the session and written in one INSERT when the transaction commits
    (a turn that answers and sends cards to three groups pays one statement, not four)."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def add(self, message: OutgoingMessage) -> None:
        now = self.clock.now()
        self.session.info.setdefault(_PENDING, []).append(
            {
                "channel": message.channel,
                "chat_id": message.chat_id,
                # The mark is kept in the payload, as a button press's answer is: no column.
                "payload": {**message.payload, ANSWER: True} if message.answer else message.payload,
                "case_number": message.case_number,
                "person_id": message.person_id,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
        announce(self.session, outbox_topic(message.channel))

    async def rewrite(self, row_id: int, changes: dict[str, Any]) -> None:
        """Change a pending row's message. A deliverer may be sending it right now: it then
        finds the change when it marks the row sent and edits what it sent
        (storage/outbox_queue.py `OutboxRows.link`)."""
        row = (
            await self.session.execute(
                select(OutboxRow.payload)
                .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            return
        await self.session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.status == "pending")
            .values(payload={**row, **changes})
        )

    def discard(self) -> None:
        """Forget the buffered rows: the transaction is rolled back (a rollback before anything
        was written begins no transaction, so SQLAlchemy's rollback events do not see it)."""
        self.session.info.pop(_PENDING, None)

    async def flush(self) -> None:
        """Write the buffered rows now (before reading the outbox in the same transaction)."""
        await self.session.run_sync(_write_pending)


async def flush_outbox(session: AsyncSession) -> None:
    """Write the rows buffered on this session (no statement when there are none): for a read
    of the outbox in the same transaction that must see them."""
    if session.info.get(_PENDING):
        await session.run_sync(_write_pending)


def _write_pending(session: Session) -> None:
    rows: list[dict[str, Any]] = session.info.pop(_PENDING, None) or []
    if rows:
        session.execute(_INSERT, rows)


# Whoever commits the session (a unit of work, or code holding the session itself), the rows
# go in with the transaction; a rollback drops them with everything else.
event.listen(Session, "before_commit", _write_pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:  # a savepoint's rollback keeps the transaction's rows
        session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class FailedDelivery:
    """A message that will not be delivered: who it was for, about what, and why not."""

    id: int
    channel: str
    chat_id: str
    case_number: str | None
    person_id: int | None
    purpose: str | None
    text: str  # the start of the message's text (HTML as sent)
    error: str
    attempts: int
    created_at: datetime
    failed_at: datetime
    person_name: str | None = None  # of the person it was for, when known


def _failed(case_number: str | None) -> ColumnElement[bool]:
    failed = OutboxRow.status == "failed"
    if case_number is not None:
        failed = failed & (OutboxRow.case_number == case_number)
    return failed


async def failed_deliveries(
    session: AsyncSession, limit: int = 50, *, offset: int = 0, case_number: str | None = None
) -> list[FailedDelivery]:
    """Deliveries that failed for good (of one case, or all), newest failure first (a failed
    row's next_attempt_at holds when it failed; the (status, next_attempt_at) index serves the
    order, so the sent millions are never read)."""
    rows = await session.execute(
        select(OutboxRow, PersonRow.name)
        .outerjoin(PersonRow, PersonRow.id == OutboxRow.person_id)
        .where(_failed(case_number))
        .order_by(OutboxRow.next_attempt_at.desc(), OutboxRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [
        FailedDelivery(
            id=row.id,
            channel=row.channel,
            chat_id=row.chat_id,
            case_number=row.case_number,
            person_id=row.person_id,
            purpose=row.payload.get("purpose"),
            text=str(row.payload.get("text") or "")[:SNIPPET_CHARS],
            error=row.error or "",
            attempts=row.attempts,
            created_at=ensure_aware(row.created_at),
            failed_at=ensure_aware(row.next_attempt_at),
            person_name=name,
        )
        for row, name in rows
    ]


async def failed_delivery_count(session: AsyncSession, case_number: str | None = None) -> int:
    """How many deliveries failed for good, of one case or all (a dashboard badge)."""
    return (
        await session.execute(
            select(func.count()).select_from(OutboxRow).where(_failed(case_number))
        )
    ).scalar_one()
