"""Names of areas, categories and departments by id, and a category's owning departments,
for what shows a case (storage/queries.py case_view, storage/case_cards.py).

With the process's OrgCache (storage/org_cache.py) each table is read once per org
generation, so a card costs no statement for them; without it (the dashboard, the CLI) the
rows a case names are read as before. Inactive rows keep their names: a case filed under a
grid or department the org file later dropped still shows what it was filed under.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.org_cache import OrgCache
from storage.rows import AreaRow, CategoryRow, DepartmentRow, ResponsibilityRow

Names = dict[str, str]
T = TypeVar("T")


def names(row: Any) -> Names:
    return {"code": row.code, "zh_CN": row.name_zh, "en": row.name_en}


class OrgNames:
    """The lookups on one session, through the process's cache when there is one."""

    def __init__(self, session: AsyncSession, cache: OrgCache | None = None) -> None:
        self.session = session
        self.cache = cache

    async def _cached(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]]) -> T:
        if self.cache is None:
            return await read()
        return await self.cache.get(self.session, key, read)

    async def _all(self, row_type: Any) -> dict[int, Names]:
        rows = await self.session.execute(select(row_type))
        return {r.id: names(r) for r in rows.scalars()}

    async def areas(self, ids: list[int]) -> dict[int, Names]:
        if self.cache is None:
            rows = await self.session.execute(select(AreaRow).where(AreaRow.id.in_(ids)))
            return {a.id: names(a) for a in rows.scalars()}
        every = await self._cached(("area_names",), lambda: self._all(AreaRow))
        return {i: dict(every[i]) for i in ids if i in every}  # copies: callers own theirs

    async def category(self, category_id: int) -> Names | None:
        if self.cache is None:
            row = await self.session.get(CategoryRow, category_id)
            return names(row) if row is not None else None
        every = await self._cached(("category_names",), lambda: self._all(CategoryRow))
        return dict(every[category_id]) if category_id in every else None

    async def department(self, department_id: int) -> Names | None:
        if self.cache is None:
            row = await self.session.get(DepartmentRow, department_id)
            return names(row) if row is not None else None
        every = await self._cached(("department_names",), lambda: self._all(DepartmentRow))
        return dict(every[department_id]) if department_id in every else None

    async def owners(self, category_id: int) -> list[tuple[str, str, str]]:
        """(code, Chinese name, English name) of the active departments responsible for the
        category, primary first: the assign buttons on a card."""
        listed = await self._cached(("owners", category_id), lambda: self._owners(category_id))
        return list(listed)

    async def _owners(self, category_id: int) -> list[tuple[str, str, str]]:
        rows = await self.session.execute(
            select(DepartmentRow.code, DepartmentRow.name_zh, DepartmentRow.name_en)
            .join(ResponsibilityRow, ResponsibilityRow.department_id == DepartmentRow.id)
            .where(ResponsibilityRow.category_id == category_id, DepartmentRow.active.is_(True))
            .order_by(ResponsibilityRow.primary.desc(), DepartmentRow.id)
        )
        return [(code, zh, en) for code, zh, en in rows.all()]
