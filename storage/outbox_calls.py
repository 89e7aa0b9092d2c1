"""The outbox queue for a deliverer outside any transaction (a sender's pass): each call of
OutboxRows (outbox_queue.py) in a short transaction of its own, committed before it returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.outbox_queue import OutboxRows, is_edit
from storage.rows import OutboxRow


class OutboxQueue:
    """A channel's outbox for a deliverer outside any transaction: each call is a short
    transaction of its own, committed before it returns."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], channel: str) -> None:
        self.sessions = sessions
        self.channel = channel

    async def due_heads(
        self, now: datetime, after: int, batch: int, *, answers_since: datetime | None = None
    ) -> list[OutboxRow]:
        async with self.sessions() as session:
            return await OutboxRows(session, self.channel).due_heads(
                now, after, batch, answers_since=answers_since
            )

    async def answers_first(self, now: datetime, since: datetime, batch: int) -> list[OutboxRow]:
        """Up to `batch` due heads: those of chats waiting for an answer since `since` first,
        then the rest oldest first (for a deliverer that reads one page per pass)."""
        async with self.sessions() as session:
            rows = OutboxRows(session, self.channel)
            first = await rows.due_heads(now, 0, batch, answers_since=since)
            taken = {row.id for row in first}
            rest = await rows.due_heads(now, 0, batch)
        return (first + [row for row in rest if row.id not in taken])[:batch]

    async def claim(self, row_id: int, now: datetime, until: datetime) -> bool:
        async with self.sessions() as session:
            claimed = await OutboxRows(session, self.channel).claim(row_id, now, until)
            await session.commit()
        return claimed

    async def claim_many(self, row_ids: list[int], now: datetime, until: datetime) -> set[int]:
        async with self.sessions() as session:
            claimed = await OutboxRows(session, self.channel).claim_many(row_ids, now, until)
            await session.commit()
        return claimed

    async def release_many(
        self, row_ids: list[int], claimed_until: datetime, due: datetime
    ) -> None:
        async with self.sessions() as session:
            await OutboxRows(session, self.channel).release_many(row_ids, claimed_until, due)
            await session.commit()

    async def release(self, row_id: int, claimed_until: datetime, now: datetime) -> None:
        async with self.sessions() as session:
            await OutboxRows(session, self.channel).release(row_id, claimed_until, now)
            await session.commit()

    async def next_retry_at(self, now: datetime) -> datetime | None:
        async with self.sessions() as session:
            return await OutboxRows(session, self.channel).next_retry_at(now)

    async def fresh_callbacks(
        self, since: datetime, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        async with self.sessions() as session:
            return await OutboxRows(session, self.channel).fresh_callbacks(since, limit)

    async def all_pending(self) -> list[OutboxRow]:
        async with self.sessions() as session:
            return await OutboxRows(session, self.channel).all_pending()

    async def set_payload(self, row_id: int, payload: dict[str, Any]) -> None:
        async with self.sessions() as session:
            await OutboxRows(session, self.channel).set_payload(row_id, payload)
            await session.commit()

    async def save_progress(self, row_id: int, payload: dict[str, Any]) -> None:
        async with self.sessions() as session:
            await OutboxRows(session, self.channel).save_progress(row_id, payload)
            await session.commit()

    async def retry_later(
        self, row_id: int, attempts: int, error: str, next_attempt_at: datetime
    ) -> None:
        async with self.sessions() as session:
            await OutboxRows(session, self.channel).retry_later(
                row_id, attempts, error, next_attempt_at
            )
            await session.commit()

    async def mark_sent(
        self, row: OutboxRow, message_id: str, now: datetime, *, caption: bool = False
    ) -> bool:
        """Sent and linked to its case in one transaction; False when there was no case to
        link (the row is sent all the same). `caption`: the message is a photo's caption."""
        async with self.sessions() as session:
            rows = OutboxRows(session, self.channel)
            await rows.mark_sent(row.id, row.attempts, now)
            linked = await rows.link(row, message_id, now, caption=caption)
            await session.commit()
        return linked

    async def fail(self, row: OutboxRow, reason: str, now: datetime) -> None:
        async with self.sessions() as session:
            rows = OutboxRows(session, self.channel)
            edit = is_edit(row.payload)
            await rows.fail(row.id, row.attempts, row.case_number, reason, now, flag_case=not edit)
            if edit:
                await rows.stop_editing(row.chat_id, str(row.payload["edit_message_id"]))
            await session.commit()
