"""The filter bar's choices and the bounded conditions every dashboard query starts from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AreaRow, CaseRow, CategoryRow, DepartmentRow
from workflow.clock import ensure_aware
from workflow.model import State
from workflow.states import OPEN_STATES

OPEN = tuple(sorted(s.value for s in OPEN_STATES))
# Open states in which someone still has to act before the deadline; a resolved case waits for
# its reporter's rating and no longer counts as overdue.
ACTIVE = tuple(s for s in OPEN if s != State.RESOLVED.value)


@dataclass(frozen=True)
class CaseFilter:
    """What the dashboard's filter bar chose: cases created in [start, end), narrowed by unit."""

    start: datetime
    end: datetime
    township_id: int | None = None
    department_id: int | None = None
    category_id: int | None = None
    state: str | None = None

    def key(self) -> tuple[Any, ...]:
        return astuple(self)


@dataclass(frozen=True)
class Unit:
    """A township, department or category the filter bar offers."""

    id: int
    code: str
    name_zh: str
    name_en: str

    def names(self) -> dict[str, str]:
        return {"code": self.code, "zh_CN": self.name_zh, "en": self.name_en}


@dataclass(frozen=True)
class OrgOptions:
    townships: list[Unit]
    departments: list[Unit]
    categories: list[Unit]


def unit_names(row: Any) -> dict[str, str]:
    return {"code": row.code, "zh_CN": row.name_zh, "en": row.name_en}


def aware(value: datetime | None) -> datetime | None:
    return ensure_aware(value) if value is not None else None


def _unindexed(column: Any, dialect: str) -> Any:
    """On SQLite, keep the planner on the created_at range: without statistics it would rather
    walk a township's or department's whole history through their (unit, state) indexes."""
    return column + 0 if dialect == "sqlite" else column


def period_conditions(f: CaseFilter, dialect: str) -> list[ColumnElement[bool]]:
    """Cases created in the period, narrowed by the filter bar."""
    conds: list[ColumnElement[bool]] = [CaseRow.created_at >= f.start, CaseRow.created_at < f.end]
    if f.township_id is not None:
        conds.append(_unindexed(CaseRow.township_id, dialect) == f.township_id)
    if f.department_id is not None:
        conds.append(_unindexed(CaseRow.department_id, dialect) == f.department_id)
    if f.category_id is not None:
        conds.append(CaseRow.category_id == f.category_id)
    if f.state is not None:
        conds.append(CaseRow.state == f.state)
    return conds


def open_conditions(f: CaseFilter, states: Sequence[str] = OPEN) -> list[ColumnElement[bool]]:
    """Cases open right now (whenever reported), narrowed by the filter bar except the period."""
    chosen = [s for s in states if f.state is None or s == f.state]
    conds: list[ColumnElement[bool]] = [CaseRow.state.in_(chosen)]
    if f.township_id is not None:
        conds.append(CaseRow.township_id == f.township_id)
    if f.department_id is not None:
        conds.append(CaseRow.department_id == f.department_id)
    if f.category_id is not None:
        conds.append(CaseRow.category_id == f.category_id)
    return conds


async def org_options(session: AsyncSession) -> OrgOptions:
    """The townships, departments and categories the filter bar and tables name."""

    async def units(stmt: Select[int, str, str, str]) -> list[Unit]:
        return [Unit(r.id, r.code, r.name_zh, r.name_en) for r in (await session.execute(stmt))]

    cols = (AreaRow.id, AreaRow.code, AreaRow.name_zh, AreaRow.name_en)
    townships = await units(
        select(*cols).where(AreaRow.kind.in_(("township", "street"))).order_by(AreaRow.code)
    )
    dept_cols = (DepartmentRow.id, DepartmentRow.code, DepartmentRow.name_zh, DepartmentRow.name_en)
    departments = await units(select(*dept_cols).order_by(DepartmentRow.code))
    cat_cols = (CategoryRow.id, CategoryRow.code, CategoryRow.name_zh, CategoryRow.name_en)
    categories = await units(select(*cat_cols).order_by(CategoryRow.id))
    return OrgOptions(townships, departments, categories)


async def count_cases(session: AsyncSession, conds: list[ColumnElement[bool]]) -> int:
    return (
        await session.execute(select(func.count()).select_from(CaseRow).where(*conds))
    ).scalar_one()
