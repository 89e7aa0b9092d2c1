"""What `shuoshi demo` looks up in the example county: who plays each role, who owns a topic."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AreaRow, CategoryRow, DepartmentRow, ResponsibilityRow, RoleAssignmentRow
from workflow.model import Role


async def first_assignment(
    session: AsyncSession, role: Role, **where: int
) -> RoleAssignmentRow | None:
    """The oldest assignment of `role`, narrowed by columns (area_id=..., department_id=...)."""
    stmt = select(RoleAssignmentRow).where(RoleAssignmentRow.role == role.value)
    for column, value in where.items():
        stmt = stmt.where(getattr(RoleAssignmentRow, column) == value)
    return (await session.execute(stmt.order_by(RoleAssignmentRow.id).limit(1))).scalar()


async def area(session: AsyncSession, area_id: int) -> AreaRow | None:
    return await session.get(AreaRow, area_id)


async def category_owner(session: AsyncSession, category_code: str) -> tuple[str, int, str] | None:
    """(category code, department id, department code) of the category's primary department."""
    owner = (
        await session.execute(
            select(CategoryRow.code, DepartmentRow.id, DepartmentRow.code)
            .join(ResponsibilityRow, ResponsibilityRow.category_id == CategoryRow.id)
            .join(DepartmentRow, DepartmentRow.id == ResponsibilityRow.department_id)
            .where(CategoryRow.code == category_code)
            .order_by(ResponsibilityRow.primary.desc())
            .limit(1)
        )
    ).first()
    return None if owner is None else (owner[0], owner[1], owner[2])
