"""The inbox's SQL: incoming updates stored before the channel is told they arrived, then
handled from here in order per chat, retried with a backoff, and failed with the reason.

How it is used and what it guarantees: docs/reliability.md, "Intake".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.rows import InboxRow
from storage.sql import affected, upsert


@dataclass(frozen=True)
class StoredUpdate:
    """One inbox row as the processor needs it."""

    id: int
    update_id: int
    chat_id: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


class SqlInbox:
    """The inbox of one channel; each method is a short transaction of its own."""

    def __init__(self, sessions: async_sessionmaker, channel: str) -> None:
        self.sessions = sessions
        self.channel = channel

    async def store(self, updates: list[tuple[int, str, dict[str, Any]]], now: datetime) -> int:
        """Store (update_id, chat_id, payload) rows in one transaction; an update id already
        stored is skipped (a redelivery). Returns how many were new."""
        if not updates:
            return 0
        async with self.sessions() as session:
            values = [
                {
                    "channel": self.channel,
                    "update_id": update_id,
                    "chat_id": chat_id[:64],
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "received_at": now,
                    "next_attempt_at": now,
                }
                for update_id, chat_id, payload in sorted(updates, key=lambda u: u[0])
            ]
            stmt = (
                upsert(session, InboxRow)
                .values(values)
                .on_conflict_do_nothing(index_elements=[InboxRow.channel, InboxRow.update_id])
            )
            stored = affected(await session.execute(stmt))
            await session.commit()
        return max(stored, 0)

    async def last_update_id(self) -> int | None:
        """The newest update id stored: polling goes on after it."""
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(func.max(InboxRow.update_id)).where(InboxRow.channel == self.channel)
                )
            ).scalar_one()

    async def pending(self, limit: int) -> list[StoredUpdate]:
        """The oldest pending updates, in update order (due or not: a chat waiting for a retry
        holds back its later updates, and only them)."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(InboxRow)
                .where(InboxRow.channel == self.channel, InboxRow.status == "pending")
                .order_by(InboxRow.update_id)
                .limit(limit)
            )
            return [
                StoredUpdate(r.id, r.update_id, r.chat_id, r.payload, r.attempts, r.next_attempt_at)
                for r in rows.scalars()
            ]

    async def next_attempt_at(self, after: datetime) -> datetime | None:
        """When the next retry after `after` is due (rows due now but waiting behind their
        chat's retry do not count: they go when it goes)."""
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(func.min(InboxRow.next_attempt_at)).where(
                        InboxRow.channel == self.channel,
                        InboxRow.status == "pending",
                        InboxRow.next_attempt_at > after,
                    )
                )
            ).scalar_one()

    async def done(self, row: StoredUpdate, now: datetime) -> None:
        await self._set(row, status="done", attempts=row.attempts + 1, processed_at=now,
                        last_error=None)  # fmt: skip

    async def retry(self, row: StoredUpdate, error: str, at: datetime) -> None:
        await self._set(row, attempts=row.attempts + 1, last_error=error, next_attempt_at=at)

    async def fail(self, row: StoredUpdate, error: str, now: datetime) -> None:
        await self._set(row, status="failed", attempts=row.attempts + 1, last_error=error,
                        processed_at=now)  # fmt: skip

    async def _set(self, row: StoredUpdate, **values: Any) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(InboxRow)
                .where(InboxRow.id == row.id, InboxRow.status == "pending")
                .values(**values)
            )
            await session.commit()

    async def prune(self, before: datetime) -> int:
        """Forget updates done before `before`, but keep the newest row: it tells where
        polling goes on. Failed rows stay for operators to read."""
        newest = await self.last_update_id()
        if newest is None:
            return 0
        async with self.sessions() as session:
            result = await session.execute(
                delete(InboxRow).where(
                    InboxRow.channel == self.channel,
                    InboxRow.status == "done",
                    InboxRow.processed_at < before,
                    InboxRow.update_id < newest,
                )
            )
            await session.commit()
        return affected(result)


def backoff(failures: int, base: float, cap: float) -> timedelta:
    """After the `failures`-th failure: base, 2 x base, 4 x base ... at most cap seconds."""
    return timedelta(seconds=min(cap, base * 2 ** min(max(failures - 1, 0), 30)))
