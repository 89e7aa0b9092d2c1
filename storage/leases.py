"""Leases in SQL: a named job held by one process until an expiry it keeps pushing forward.

Taking and renewing are one conditional UPDATE (ours, or expired) or, for a name never taken,
one INSERT that does nothing on conflict, so two processes can never both succeed: on
PostgreSQL the second UPDATE waits for the first and then finds the row no longer expired; on
SQLite writes are serialised. Works the same on both (an advisory lock would not on SQLite).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.rows import LeaseRow
from storage.sql import affected, upsert


async def take_lease(
    sessions: async_sessionmaker, name: str, holder: str, now: datetime, expires_at: datetime
) -> bool:
    """Take or renew `name` for `holder` until `expires_at`; False while another holds it."""
    async with sessions() as session:
        renewed = await session.execute(
            update(LeaseRow)
            .where(
                LeaseRow.name == name,
                or_(LeaseRow.holder == holder, LeaseRow.expires_at <= now),
            )
            .values(holder=holder, expires_at=expires_at)
        )
        taken = affected(renewed) == 1
        if not taken:
            inserted = await session.execute(
                upsert(session, LeaseRow)
                .values(name=name, holder=holder, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=[LeaseRow.name])
            )
            taken = affected(inserted) == 1
        await session.commit()
    return taken


async def release_lease(
    sessions: async_sessionmaker, name: str, holder: str, now: datetime
) -> None:
    """Let go at once (a clean stop), so another process need not wait for the expiry."""
    async with sessions() as session:
        await session.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, LeaseRow.holder == holder)
            .values(expires_at=now)
        )
        await session.commit()


async def lease_holder(sessions: async_sessionmaker, name: str, now: datetime) -> str | None:
    """Who holds `name` now; None when nobody does (never taken, expired or released)."""
    async with sessions() as session:
        row = await session.get(LeaseRow, name, populate_existing=True)
    return row.holder if row is not None and row.expires_at > now else None
