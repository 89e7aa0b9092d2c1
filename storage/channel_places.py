"""The areas a resident picks a grid from: by kind, by code, or the nearest to a shared location."""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.org_cache import OrgCache
from storage.rows import AreaRow
from workflow.channels import Place

# places("township") lists townships and streets; places("village") villages and communities.
_KIND_GROUPS = {
    "township": ("township", "street"),
    "street": ("township", "street"),
    "village": ("village", "community"),
    "community": ("village", "community"),
}


def _place(row: AreaRow) -> Place:
    return Place(
        id=row.id,
        code=row.code,
        kind=row.kind,
        name_zh=row.name_zh,
        name_en=row.name_en,
        parent_id=row.parent_id,
    )


NEAREST_GRID_KM = 3.0


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; plenty for choosing among grids a few hundred metres apart."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


class ChannelPlaces:
    """Places of the ChannelStore port; mixed into SqlChannelStore."""

    session: AsyncSession
    org_cache: OrgCache | None

    # Places ----------------------------------------------------------------------------------

    async def places(self, kind: str, parent_id: int | None = None) -> list[Place]:
        """Active areas of a kind (township also lists streets, village communities), by code."""
        query = select(AreaRow).where(
            AreaRow.kind.in_(_KIND_GROUPS.get(kind, (kind,))), AreaRow.active.is_(True)
        )
        if parent_id is not None:
            query = query.where(AreaRow.parent_id == parent_id)
        rows = await self.session.execute(query.order_by(AreaRow.code))
        return [_place(row) for row in rows.scalars()]

    async def place(self, place_id: int) -> Place | None:
        """An active area by id; None when unknown or no longer in the org file."""
        if self.org_cache is None:
            return await self._place_by_id(place_id)
        return await self.org_cache.get(
            self.session, ("place_id", place_id), lambda: self._place_by_id(place_id)
        )

    async def _place_by_id(self, place_id: int) -> Place | None:
        row = await self.session.get(AreaRow, place_id)
        return _place(row) if row is not None and row.active else None

    async def nearest_grid(
        self, latitude: float, longitude: float, max_km: float = NEAREST_GRID_KM
    ) -> Place | None:
        """The active grid whose point is closest to a shared location, if close enough."""
        rows = await self.session.execute(
            select(AreaRow).where(
                AreaRow.kind == "grid", AreaRow.active.is_(True), AreaRow.latitude.is_not(None)
            )
        )
        best = min(
            (
                (_km(latitude, longitude, r.latitude, r.longitude), r)
                for r in rows.scalars()
                if r.latitude is not None and r.longitude is not None
            ),
            key=lambda pair: pair[0],
            default=None,
        )
        if best is None or best[0] > max_km:
            return None
        return _place(best[1])

    async def place_by_code(self, code: str) -> Place | None:
        """An active area by its code (as on a QR code: exact match)."""
        if self.org_cache is None:
            return await self._place_by_code(code)
        return await self.org_cache.get(
            self.session, ("place", code.strip()), lambda: self._place_by_code(code)
        )

    async def _place_by_code(self, code: str) -> Place | None:
        row = (
            await self.session.execute(
                select(AreaRow).where(AreaRow.code == code.strip(), AreaRow.active.is_(True))
            )
        ).scalar_one_or_none()
        return _place(row) if row is not None else None
