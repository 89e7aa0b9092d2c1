"""Which cases and units the figures count: valid cases of a period, active units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AreaRow, CaseRow, DepartmentRow
from workflow.ports import (
    UNIT_KINDS,
    Period,
    UnitRef,
)
from workflow.states import DISMISSED_STATES, RESULT_STATES, UNRATED_STATES

# Both derived from the state table (workflow/states.py), in a stable order for SQL:
# reports that were never anybody's work to do: invalid (无效) and duplicates (重复);
NOT_A_UNITS_WORK = tuple(sorted(s.value for s in DISMISSED_STATES))
# a result was reported (办结) and stands: not reopened, not under supervision after a rejection.
RESOLVED_STATES = tuple(sorted(s.value for s in RESULT_STATES))
# and ended without the reporter's rating: never satisfied, whatever rating stayed on the row.
UNRATED_ENDINGS = tuple(sorted(s.value for s in UNRATED_STATES))
SATISFIED_RATINGS = ("satisfied", "basically_satisfied")
TOWNSHIP_KINDS = ("township", "street")


def not_the_index(column: Any) -> ColumnElement[Any]:
    """`column + 0`: the same value, but no index on it can be used for the lookup.

    Without table statistics SQLite prefers an equality index (township_id+state,
    department_id+state) to a range, and would walk all of a township's history instead of one
    week of cases by created_at; this keeps the period's index the way in on both databases.
    """
    return column + 0


def base_filter(
    period: Period,
    *,
    township_id: int | None = None,
    department_id: int | None = None,
    category_id: int | None = None,
) -> list[ColumnElement[bool]]:
    """The valid cases created in the period (ix_cases_created_at bounds the read)."""
    conditions: list[ColumnElement[bool]] = [
        CaseRow.created_at >= period.start,
        CaseRow.created_at < period.end,
        CaseRow.state.not_in(NOT_A_UNITS_WORK),
    ]
    if township_id is not None:
        conditions.append(not_the_index(CaseRow.township_id) == township_id)
    if department_id is not None:
        conditions.append(not_the_index(CaseRow.department_id) == department_id)
    if category_id is not None:
        # ix_cases_category_created has created_at second: still bounded by the period.
        conditions.append(CaseRow.category_id == category_id)
    return conditions


def check_kind(kind: str) -> None:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}: expected one of {', '.join(UNIT_KINDS)}")


async def units(session: AsyncSession, kind: str) -> list[UnitRef]:
    """Active departments, or active townships and streets, in the order of the org file."""
    check_kind(kind)
    rows: Sequence[DepartmentRow] | Sequence[AreaRow]
    if kind == "department":
        depts = select(DepartmentRow).where(DepartmentRow.active.is_(True))
        rows = (await session.execute(depts.order_by(DepartmentRow.id))).scalars().all()
    else:
        areas = select(AreaRow).where(AreaRow.kind.in_(TOWNSHIP_KINDS), AreaRow.active.is_(True))
        rows = (await session.execute(areas.order_by(AreaRow.id))).scalars().all()
    return [UnitRef(kind, r.id, r.code, r.name_zh, r.name_en) for r in rows]


async def units_by_id(session: AsyncSession, kind: str, ids: set[int]) -> dict[int, UnitRef]:
    """Units by id, inactive ones included: old cases still point to them."""
    if not ids:
        return {}
    if kind == "department":
        rows = await session.execute(select(DepartmentRow).where(DepartmentRow.id.in_(ids)))
    else:
        rows = await session.execute(select(AreaRow).where(AreaRow.id.in_(ids)))
    return {r.id: UnitRef(kind, r.id, r.code, r.name_zh, r.name_en) for r in rows.scalars()}
