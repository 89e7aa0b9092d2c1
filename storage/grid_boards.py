"""The grids a QR board is printed for: one grid, every grid under an area, or the county's."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AreaRow

__all__ = ["GridBoard", "GridBoards", "UnknownArea"]


@dataclass(frozen=True)
class GridBoard:
    """What a grid's board shows; names in both languages (the `named` filter picks one)."""

    code: str
    name_zh: str
    name_en: str
    village_zh: str
    village_en: str
    township_code: str
    township_zh: str
    township_en: str


class UnknownArea(LookupError):
    """No active area has this code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# Where an area's grids are found: a grid is itself, a village or township names itself in the
# grid's denormalised village_id / township_id, the county holds every grid.
_ANCESTOR = {
    "grid": AreaRow.id,
    "village": AreaRow.village_id,
    "community": AreaRow.village_id,
    "township": AreaRow.township_id,
    "street": AreaRow.township_id,
}


class GridBoards:
    """Reads on the caller's session; nothing is written."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def area_kind(self, code: str) -> str:
        """The kind of an active area (grid, village, township, county...); UnknownArea if
        there is none with this code."""
        kind = (
            await self.session.execute(
                select(AreaRow.kind).where(AreaRow.code == code.strip(), AreaRow.active.is_(True))
            )
        ).scalar_one_or_none()
        if kind is None:
            raise UnknownArea(code)
        return kind

    async def boards(self, area_code: str | None = None) -> list[GridBoard]:
        """The active grids under an area (a grid: itself), or all of them, by township and
        code: the order boards are printed and filed in."""
        township = AreaRow.__table__.alias("township")
        village = AreaRow.__table__.alias("village")
        query = (
            select(
                AreaRow.code,
                AreaRow.name_zh,
                AreaRow.name_en,
                village.c.name_zh,
                village.c.name_en,
                township.c.code,
                township.c.name_zh,
                township.c.name_en,
            )
            .join(village, village.c.id == AreaRow.village_id)
            .join(township, township.c.id == AreaRow.township_id)
            .where(AreaRow.kind == "grid", AreaRow.active.is_(True))
            .order_by(township.c.code, AreaRow.code)
        )
        if area_code is not None:
            kind = await self.area_kind(area_code)
            column = _ANCESTOR.get(kind)
            if column is not None:  # the county (or anything above townships): every grid
                area_id = (
                    await self.session.execute(
                        select(AreaRow.id).where(AreaRow.code == area_code.strip())
                    )
                ).scalar_one()
                query = query.where(column == area_id)
        rows = await self.session.execute(query)
        return [GridBoard(*row) for row in rows.all()]
