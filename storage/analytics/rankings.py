"""What the weekly analysis and the dashboard rank: top categories and grids, and setbacks."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.analytics.scope import base_filter, not_the_index, units_by_id
from storage.rows import AreaRow, CaseRow, CategoryRow, TransitionRow
from workflow.clock import ensure_aware
from workflow.ports import (
    Period,
    RankedItem,
    Setback,
)

# Case ids per IN (...) list: well under SQLite's bound-parameter limit.
_IN_CHUNK = 500


async def setbacks(
    session: AsyncSession,
    period: Period,
    *,
    township_id: int | None = None,
    department_id: int | None = None,
    category_id: int | None = None,
) -> list[Setback]:
    """Returns (退回) and dissatisfied ratings that sent a case back, that happened in the period.

    Events, read through case_transitions.at; each is charged to the department that held the
    case then: the one named by the case's latest assignment before the event.
    """
    stmt = (
        select(
            TransitionRow.case_id,
            TransitionRow.seq,
            TransitionRow.action,
            TransitionRow.to_state,
            TransitionRow.at,
            TransitionRow.comment,
            TransitionRow.data,
            CaseRow.number,
            CaseRow.township_id,
        )
        .join(CaseRow, CaseRow.id == TransitionRow.case_id)
        .where(
            TransitionRow.at >= period.start,
            TransitionRow.at < period.end,
            or_(
                TransitionRow.action == "return",
                and_(
                    TransitionRow.action == "rate",
                    TransitionRow.to_state.in_(("in_progress", "supervision")),
                ),
            ),
        )
        .order_by(TransitionRow.at, TransitionRow.id)
    )
    # The period's transitions lead (ix on at); the case's columns only filter them.
    if township_id is not None:
        stmt = stmt.where(not_the_index(CaseRow.township_id) == township_id)
    if category_id is not None:
        stmt = stmt.where(not_the_index(CaseRow.category_id) == category_id)
    rows = (await session.execute(stmt)).all()
    if not rows:
        return []
    assigned: dict[int, list[tuple[int, int | None]]] = {}
    case_ids = sorted({r.case_id for r in rows})
    for first in range(0, len(case_ids), _IN_CHUNK):
        assigns = await session.execute(
            select(TransitionRow.case_id, TransitionRow.seq, TransitionRow.data)
            .where(
                TransitionRow.case_id.in_(case_ids[first : first + _IN_CHUNK]),
                TransitionRow.action == "assign",
            )
            .order_by(TransitionRow.case_id, TransitionRow.seq)
        )
        for case_id, seq, data in assigns:
            value = (data or {}).get("department_id")
            assigned.setdefault(case_id, []).append((seq, None if value is None else int(value)))
    holders = [
        next((dept for seq, dept in reversed(assigned.get(r.case_id, [])) if seq < r.seq), None)
        for r in rows
    ]
    names = await units_by_id(session, "department", {d for d in holders if d is not None})
    out = []
    for r, holder in zip(rows, holders, strict=True):
        if department_id is not None and holder != department_id:
            continue
        unit = names.get(holder) if holder is not None else None
        event = "returned" if r.action == "return" else (
            "reopened" if r.to_state == "in_progress" else "escalated"
        )  # fmt: skip
        out.append(
            Setback(
                number=r.number,
                event=event,
                at=ensure_aware(r.at),
                township_id=r.township_id,
                department_id=holder,
                department_zh=unit.name_zh if unit else None,
                department_en=unit.name_en if unit else None,
                comment=r.comment,
                late=r.action == "return" and (r.data or {}).get("late") is True,
            )
        )
    return out


async def top_categories(session: AsyncSession, period: Period, limit: int = 5) -> list[RankedItem]:
    """The categories with the most valid cases created in the period, most first."""
    count = func.count().label("n")
    stmt = (
        select(CaseRow.category_id, count)
        .where(*base_filter(period))
        .group_by(CaseRow.category_id)
        .order_by(count.desc(), CaseRow.category_id)
        .limit(limit)
    )
    counts = (await session.execute(stmt)).all()
    if not counts:
        return []
    rows = await session.execute(
        select(CategoryRow).where(CategoryRow.id.in_([c for c, _ in counts]))
    )
    by_id = {r.id: r for r in rows.scalars()}
    return [
        RankedItem("category", c, by_id[c].code, by_id[c].name_zh, by_id[c].name_en, n)
        for c, n in counts
    ]


async def top_grids(session: AsyncSession, period: Period, limit: int = 5) -> list[RankedItem]:
    """The grids with the most valid cases created in the period, with their township."""
    count = func.count().label("n")
    stmt = (
        select(CaseRow.grid_id, count)
        .where(*base_filter(period))
        .group_by(CaseRow.grid_id)
        .order_by(count.desc(), CaseRow.grid_id)
        .limit(limit)
    )
    counts = (await session.execute(stmt)).all()
    if not counts:
        return []
    township = aliased(AreaRow)
    rows = await session.execute(
        select(AreaRow, township)
        .outerjoin(township, township.id == AreaRow.township_id)
        .where(AreaRow.id.in_([g for g, _ in counts]))
    )
    by_id = {grid.id: (grid, parent) for grid, parent in rows.all()}
    out = []
    for grid_id, n in counts:
        grid, parent = by_id[grid_id]
        out.append(
            RankedItem(
                "grid", grid_id, grid.code, grid.name_zh, grid.name_en, n,
                parent_zh=parent.name_zh if parent else None,
                parent_en=parent.name_en if parent else None,
            )
        )  # fmt: skip
    return out
