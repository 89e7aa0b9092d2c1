"""Org directory: who may act where, and the codes commands name, read from the org tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.case_memo import known_grants
from storage.org_cache import OrgCache
from storage.rows import AreaRow, CategoryRow, DepartmentRow, PersonRow, RoleAssignmentRow
from workflow.errors import NotFound, NotPermitted
from workflow.model import Actor, DeadlineClass, Role
from workflow.ports import CategoryInfo, DepartmentInfo, GridPlace

T = TypeVar("T")


class SqlOrgDirectory:
    def __init__(self, session: AsyncSession, cache: OrgCache | None = None) -> None:
        self.session = session
        self.cache = cache  # grids, categories and the county code as this process read them

    async def _cached(self, key: tuple[str, ...], read: Callable[[], Awaitable[T]]) -> T:
        if self.cache is None:
            return await read()
        return await self.cache.get(self.session, key, read)

    async def is_empty(self) -> bool:
        """No organisation loaded yet: not a single area."""
        count = (await self.session.execute(select(func.count()).select_from(AreaRow))).scalar_one()
        return count == 0

    async def actor(self, person_id: int, role: Role) -> Actor:
        """The person in the given role, with every grid, township and department it covers."""
        known = known_grants(self.session, person_id)  # read with the turn (case_memo.py)
        if known is not None:
            return _actor(person_id, role, [(a, d, k) for r, a, d, k in known if r == role.value])
        # One statement: the person (active or not), left-joined to their grants of this role.
        rows = (
            await self.session.execute(
                select(
                    PersonRow.active, RoleAssignmentRow.id, RoleAssignmentRow.area_id,
                    RoleAssignmentRow.department_id, AreaRow.kind,
                )
                .select_from(PersonRow)
                .outerjoin(
                    RoleAssignmentRow,
                    (RoleAssignmentRow.person_id == PersonRow.id)
                    & (RoleAssignmentRow.role == role),
                )
                .outerjoin(AreaRow, AreaRow.id == RoleAssignmentRow.area_id)
                .where(PersonRow.id == person_id)
            )
        ).all()  # fmt: skip
        if not rows or not rows[0][0]:
            raise NotFound("unknown_person", f"no active person with id {person_id}")
        grants: list[tuple[int | None, int | None, str | None]] = [
            (area, department, kind) for _active, grant, area, department, kind in rows
            if grant is not None
        ]  # fmt: skip
        return _actor(person_id, role, grants)

    async def grid_place(self, grid_code: str) -> GridPlace:
        return await self._cached(("grid", grid_code), lambda: self._grid_place(grid_code))

    async def _grid_place(self, grid_code: str) -> GridPlace:
        row = (
            await self.session.execute(
                select(AreaRow).where(
                    AreaRow.code == grid_code, AreaRow.kind == "grid", AreaRow.active.is_(True)
                )
            )
        ).scalar_one_or_none()
        if row is None or row.village_id is None or row.township_id is None:
            raise NotFound("unknown_grid", f"no grid with code {grid_code}", grid=grid_code)
        return GridPlace(grid_id=row.id, village_id=row.village_id, township_id=row.township_id)

    async def category(self, code: str) -> CategoryInfo:
        return await self._cached(("category", code), lambda: self._category(code))

    async def _category(self, code: str) -> CategoryInfo:
        row = (
            await self.session.execute(
                select(CategoryRow).where(CategoryRow.code == code, CategoryRow.active.is_(True))
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("unknown_category", f"no category with code {code}", category=code)
        return CategoryInfo(
            id=row.id, code=row.code, deadline_class=DeadlineClass(row.deadline_class)
        )

    async def categories(self) -> list[dict[str, str]]:
        """Active categories in file order, with both names, for the report buttons."""
        listed = await self._cached(("categories",), self._categories)
        return [dict(c) for c in listed]  # copies: a caller may change its own

    async def _categories(self) -> list[dict[str, str]]:
        rows = await self.session.execute(
            select(CategoryRow).where(CategoryRow.active.is_(True)).order_by(CategoryRow.id)
        )
        return [
            {
                "code": c.code,
                "name_zh": c.name_zh,
                "name_en": c.name_en,
                "deadline_class": c.deadline_class,
            }
            for c in rows.scalars()
        ]

    async def department(self, code: str) -> DepartmentInfo:
        row = (
            await self.session.execute(
                select(DepartmentRow).where(
                    DepartmentRow.code == code, DepartmentRow.active.is_(True)
                )
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("unknown_department", f"no department with code {code}", department=code)
        return DepartmentInfo(id=row.id, code=row.code)

    async def case_prefix(self) -> str:
        return await self._cached(("county",), self._case_prefix)

    async def _case_prefix(self) -> str:
        code = (
            await self.session.execute(
                select(AreaRow.code).where(AreaRow.kind == "county").limit(1)
            )
        ).scalar_one_or_none()
        if code is None:
            raise NotFound("no_county", "no county loaded: run `shuoshi org load FILE`")
        return code


def _actor(
    person_id: int, role: Role, grants: list[tuple[int | None, int | None, str | None]]
) -> Actor:
    """The actor from its grants of the role: (area id, department id, area kind) each."""
    if not grants:
        raise NotPermitted(
            "role_not_held",
            f"person {person_id} does not hold the role {role.value}",
            role=role.value,
        )
    grids = frozenset(a for a, _d, kind in grants if a is not None and kind == "grid")
    townships = frozenset(
        a for a, _d, kind in grants if a is not None and kind in ("township", "street")
    )
    departments = frozenset(d for _a, d, _k in grants if d is not None)
    return Actor(
        person_id=person_id,
        role=role,
        grid_ids=grids,
        township_ids=townships,
        department_ids=departments,
    )
