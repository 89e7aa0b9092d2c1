"""Outbox writer: messages become rows in the same transaction as the change that caused them."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import OutboxRow
from workflow.clock import Clock
from workflow.ports import OutgoingMessage


class SqlOutbox:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def add(self, message: OutgoingMessage) -> None:
        now = self.clock.now()
        await self.session.execute(
            insert(OutboxRow).values(
                channel=message.channel,
                chat_id=message.chat_id,
                payload=message.payload,
                case_number=message.case_number,
                person_id=message.person_id,
                status="pending",
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
        )
