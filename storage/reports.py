"""The Reports port on the unit of work's session: analytics reads plus the digest records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import analytics
from storage.rows import DigestRunRow
from storage.sql import affected, upsert
from workflow.ports import Period, RankedItem, Setback, UnitDigest, UnitRates, UnitRef


class SqlReports:
    """Rates, top lists and digest lists (storage/analytics/) and which digests went out."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unit_rates(
        self,
        kind: str,
        period: Period,
        *,
        as_of: datetime,
        township_id: int | None = None,
        department_id: int | None = None,
        category_id: int | None = None,
    ) -> list[UnitRates]:
        return await analytics.unit_rates(
            self.session, kind, period, as_of=as_of, township_id=township_id,
            department_id=department_id, category_id=category_id,
        )  # fmt: skip

    async def county_rates(
        self, period: Period, *, as_of: datetime, category_id: int | None = None
    ) -> UnitRates:
        return await analytics.county_rates(
            self.session, period, as_of=as_of, category_id=category_id
        )

    async def top_categories(self, period: Period, limit: int = 5) -> list[RankedItem]:
        return await analytics.top_categories(self.session, period, limit)

    async def top_grids(self, period: Period, limit: int = 5) -> list[RankedItem]:
        return await analytics.top_grids(self.session, period, limit)

    async def setbacks(self, period: Period) -> list[Setback]:
        return await analytics.setbacks(self.session, period)

    async def units(self, kind: str) -> list[UnitRef]:
        return await analytics.units(self.session, kind)

    async def unit_digest(self, unit: UnitRef, window: Period, now: datetime) -> UnitDigest:
        return await analytics.unit_digest(self.session, unit, window, now)

    async def runs_recorded(self, kind: str, period: str) -> set[str]:
        """Targets that already had this digest for this period."""
        rows = await self.session.execute(
            select(DigestRunRow.target).where(
                DigestRunRow.kind == kind, DigestRunRow.period == period
            )
        )
        return set(rows.scalars())

    async def claim_run(self, kind: str, target: str, period: str, now: datetime) -> bool:
        """Record that this digest goes to this target for this period; False if it already did.

        Call it first in the transaction that queues the messages: the primary key makes a second
        process (or a rerun after a restart) find the row and send nothing, and a rollback frees
        the claim for the next attempt.
        """
        stmt = (
            upsert(self.session, DigestRunRow)
            .values(kind=kind, target=target, period=period, recorded_at=now)
            .on_conflict_do_nothing(
                index_elements=[DigestRunRow.kind, DigestRunRow.target, DigestRunRow.period]
            )
        )
        result = await self.session.execute(stmt)
        return affected(result) == 1
