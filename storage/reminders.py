"""Reminder records and the sweeper's indexed view of what is due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import CaseReminderRow, CaseRow
from storage.sql import affected, upsert
from workflow.model import Case


class SqlReminderStore:
    """`record` inserts with ON CONFLICT DO NOTHING: two sweepers never both send a threshold."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due_numbers(self, now: datetime, limit: int) -> list[str]:
        """Numbers of the cases due for a look, earliest first, from the next_reminder_at index."""
        rows = await self.session.execute(
            select(CaseRow.number)
            .where(CaseRow.next_reminder_at <= now)
            .order_by(CaseRow.next_reminder_at, CaseRow.id)
            .limit(limit)
        )
        return list(rows.scalars())

    async def recorded(self, case_id: int, stage_key: str) -> set[str]:
        rows = await self.session.execute(
            select(CaseReminderRow.threshold).where(
                CaseReminderRow.case_id == case_id, CaseReminderRow.stage_key == stage_key
            )
        )
        return set(rows.scalars())

    async def record(
        self, case_id: int, stage_key: str, thresholds: list[Any], sent: set[str], now: datetime
    ) -> set[str]:
        """Record thresholds; returns the names this call inserted (not those already there)."""
        if not thresholds:
            return set()
        stmt = (
            upsert(self.session, CaseReminderRow)
            .values(
                [
                    {
                        "case_id": case_id,
                        "stage_key": stage_key,
                        "threshold": t.name,
                        "due_at": t.at,
                        "recorded_at": now,
                        "sent": t.name in sent,
                    }
                    for t in thresholds
                ]
            )
            .on_conflict_do_nothing(index_elements=["case_id", "stage_key", "threshold"])
            .returning(CaseReminderRow.threshold)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def set_next(self, case: Case, at: datetime | None) -> bool:
        """Move the case's next look; False if someone changed the case since it was read."""
        result = await self.session.execute(
            update(CaseRow)
            .where(CaseRow.id == case.id, CaseRow.version == case.version)
            .values(next_reminder_at=at)
        )
        return affected(result) == 1

    async def postpone(self, case_number: str, at: datetime) -> None:
        await self.session.execute(
            update(CaseRow).where(CaseRow.number == case_number).values(next_reminder_at=at)
        )

    async def history(self, case_id: int) -> list[tuple[str, str, datetime, bool]]:
        """(stage, threshold, due at, sent) of a case, oldest first: for its page and tests."""
        rows = await self.session.execute(
            select(
                CaseReminderRow.stage_key,
                CaseReminderRow.threshold,
                CaseReminderRow.due_at,
                CaseReminderRow.sent,
            )
            .where(CaseReminderRow.case_id == case_id)
            .order_by(CaseReminderRow.due_at, CaseReminderRow.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]
