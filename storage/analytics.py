"""The one implementation of the rates in docs/rates.md, for digests, the weekly analysis and
the dashboard.

Every query is bounded by its period through an indexed column (cases.created_at,
case_transitions.at) or by the open cases of one unit (department_id+state, township_id+state),
so a page view reads the period's cases, never the county's whole history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.rows import AreaRow, CaseRow, CategoryRow, DepartmentRow, TransitionRow
from storage.sql import dialect_of
from workflow.clock import SHANGHAI, ensure_aware
from workflow.ports import (
    UNIT_KINDS,
    Period,
    RankedItem,
    Setback,
    UnitDigest,
    UnitRates,
    UnitRef,
)

__all__ = [
    "NOT_A_UNITS_WORK",
    "RESOLVED_STATES",
    "SATISFIED_RATINGS",
    "Period",
    "RankedItem",
    "Setback",
    "UnitDigest",
    "UnitRates",
    "UnitRef",
    "county_rates",
    "setbacks",
    "top_categories",
    "top_grids",
    "unit_digest",
    "unit_rates",
    "units",
]

# Reports that were never anybody's work to do: invalid (无效) and duplicates (重复).
NOT_A_UNITS_WORK = ("rejected", "duplicate")
# A result was reported (办结) and stands: not reopened, not under supervision after a rejection.
RESOLVED_STATES = ("resolved", "closed", "closed_unrated")
SATISFIED_RATINGS = ("satisfied", "basically_satisfied")
# The states in which a unit holds a case and must act on it (the digest's lists).
DEPARTMENT_HELD = ("assigned", "in_progress")
TOWNSHIP_HELD = ("township", "in_progress")
TOWNSHIP_KINDS = ("township", "street")
# Case ids per IN (...) list: well under SQLite's bound-parameter limit.
_IN_CHUNK = 500


def _hours_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    """end - start in hours, in SQL: neither database has one spelling for it."""
    if dialect_of(session) == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _not_the_index(column: Any) -> ColumnElement[Any]:
    """`column + 0`: the same value, but no index on it can be used for the lookup.

    Without table statistics SQLite prefers an equality index (township_id+state,
    department_id+state) to a range, and would walk all of a township's history instead of one
    week of cases by created_at; this keeps the period's index the way in on both databases.
    """
    return column + 0


def _base_filter(
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
        conditions.append(_not_the_index(CaseRow.township_id) == township_id)
    if department_id is not None:
        conditions.append(_not_the_index(CaseRow.department_id) == department_id)
    if category_id is not None:
        # ix_cases_category_created has created_at second: still bounded by the period.
        conditions.append(CaseRow.category_id == category_id)
    return conditions


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(when((condition, 1), else_=0)), 0)


def _rate_columns(session: AsyncSession, as_of: datetime) -> list[ColumnElement[Any]]:
    """The counts of docs/rates.md over whatever set of cases the query selects."""
    resolved = CaseRow.state.in_(RESOLVED_STATES)
    hours = _hours_between(session, CaseRow.created_at, CaseRow.resolved_at)
    return [
        func.count().label("cases"),
        _count_if(CaseRow.accepted_at.is_not(None)).label("replied"),
        _count_if(resolved).label("resolved"),
        _count_if(and_(resolved, CaseRow.resolved_at <= CaseRow.due_at)).label("resolved_on_time"),
        _count_if(and_(~resolved, CaseRow.due_at < as_of)).label("overdue_open"),
        _count_if(CaseRow.rating.is_not(None)).label("rated"),
        _count_if(CaseRow.rating.in_(SATISFIED_RATINGS)).label("satisfied"),
        func.avg(when((resolved, hours), else_=None)).label("avg_hours"),
    ]


# The UnitRates counts, labelled so in _rate_columns.
_COUNTS = ("cases", "replied", "resolved", "resolved_on_time", "overdue_open", "rated", "satisfied")


def _rates(unit: UnitRef, row: Any | None, returned: int, reopened: int) -> UnitRates:
    """A row of _rate_columns (None: the unit had no cases) as the unit's UnitRates."""
    counts = {name: int(getattr(row, name)) if row is not None else 0 for name in _COUNTS}
    hours = row.avg_hours if row is not None else None
    return UnitRates(
        kind=unit.kind,
        unit_id=unit.id,
        code=unit.code,
        name_zh=unit.name_zh,
        name_en=unit.name_en,
        **counts,
        avg_hours_to_close=None if hours is None else float(hours),
        returned=returned,
        reopened=reopened,
    )


def _check_kind(kind: str) -> None:
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}: expected one of {', '.join(UNIT_KINDS)}")


async def units(session: AsyncSession, kind: str) -> list[UnitRef]:
    """Active departments, or active townships and streets, in the order of the org file."""
    _check_kind(kind)
    rows: Sequence[DepartmentRow] | Sequence[AreaRow]
    if kind == "department":
        depts = select(DepartmentRow).where(DepartmentRow.active.is_(True))
        rows = (await session.execute(depts.order_by(DepartmentRow.id))).scalars().all()
    else:
        areas = select(AreaRow).where(AreaRow.kind.in_(TOWNSHIP_KINDS), AreaRow.active.is_(True))
        rows = (await session.execute(areas.order_by(AreaRow.id))).scalars().all()
    return [UnitRef(kind, r.id, r.code, r.name_zh, r.name_en) for r in rows]


async def _units_by_id(session: AsyncSession, kind: str, ids: set[int]) -> dict[int, UnitRef]:
    """Units by id, inactive ones included: old cases still point to them."""
    if not ids:
        return {}
    if kind == "department":
        rows = await session.execute(select(DepartmentRow).where(DepartmentRow.id.in_(ids)))
    else:
        rows = await session.execute(select(AreaRow).where(AreaRow.id.in_(ids)))
    return {r.id: UnitRef(kind, r.id, r.code, r.name_zh, r.name_en) for r in rows.scalars()}


async def unit_rates(
    session: AsyncSession,
    kind: str,
    period: Period,
    *,
    township_id: int | None = None,
    department_id: int | None = None,
    category_id: int | None = None,
    as_of: datetime | None = None,
) -> list[UnitRates]:
    """One row per department (kind="department") or township (kind="township").

    Every active unit gets a row, with zeros and None rates when it had no cases; an inactive
    unit appears only when it had cases. The filters narrow the cases (a township's cases of
    one department, one category...); township_id with kind="township" (or department_id with
    kind="department") also keeps only that unit's row. `as_of` is when "overdue" is judged:
    pass the clock's now (default: the real time).
    """
    _check_kind(kind)
    as_of = as_of or datetime.now(SHANGHAI)
    group = CaseRow.department_id if kind == "department" else CaseRow.township_id
    filters = _base_filter(
        period, township_id=township_id, department_id=department_id, category_id=category_id
    )
    stmt = (
        select(group.label("unit_id"), *_rate_columns(session, as_of))
        .where(*filters, group.is_not(None))
        .group_by(group)
    )
    aggregates = {row.unit_id: row for row in await session.execute(stmt)}
    events = await setbacks(
        session, period, township_id=township_id, department_id=department_id,
        category_id=category_id,
    )  # fmt: skip
    returned: dict[int, int] = {}
    reopened: dict[int, int] = {}
    for event in events:
        unit_id = event.department_id if kind == "department" else event.township_id
        if unit_id is None:
            continue
        counter = returned if event.event == "returned" else reopened
        counter[unit_id] = counter.get(unit_id, 0) + 1
    wanted = township_id if kind == "township" else department_id
    listed = [u for u in await units(session, kind) if wanted is None or u.id == wanted]
    seen = {u.id for u in listed}
    extra = (set(aggregates) | set(returned) | set(reopened)) - seen
    if wanted is not None:
        extra &= {wanted}
    listed += sorted((await _units_by_id(session, kind, extra)).values(), key=lambda u: u.id)
    return [
        _rates(u, aggregates.get(u.id), returned.get(u.id, 0), reopened.get(u.id, 0))
        for u in listed
    ]


async def county_rates(
    session: AsyncSession,
    period: Period,
    *,
    category_id: int | None = None,
    as_of: datetime | None = None,
) -> UnitRates:
    """The same figures over the whole county (every township's cases together)."""
    as_of = as_of or datetime.now(SHANGHAI)
    stmt = select(*_rate_columns(session, as_of)).where(
        *_base_filter(period, category_id=category_id)
    )
    row = (await session.execute(stmt)).one()
    events = await setbacks(session, period, category_id=category_id)
    county = (
        await session.execute(select(AreaRow).where(AreaRow.kind == "county").order_by(AreaRow.id))
    ).scalar()
    unit = (
        UnitRef("county", county.id, county.code, county.name_zh, county.name_en)
        if county is not None
        else UnitRef("county", 0, "", "", "")
    )
    returned = sum(1 for e in events if e.event == "returned")
    return _rates(unit, row, returned, len(events) - returned)


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
        stmt = stmt.where(_not_the_index(CaseRow.township_id) == township_id)
    if category_id is not None:
        stmt = stmt.where(_not_the_index(CaseRow.category_id) == category_id)
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
    names = await _units_by_id(session, "department", {d for d in holders if d is not None})
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
            )
        )
    return out


async def top_categories(session: AsyncSession, period: Period, limit: int = 5) -> list[RankedItem]:
    """The categories with the most valid cases created in the period, most first."""
    count = func.count().label("n")
    stmt = (
        select(CaseRow.category_id, count)
        .where(*_base_filter(period))
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
        .where(*_base_filter(period))
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


def _end_of_local_day(now: datetime) -> datetime:
    day = now.astimezone(SHANGHAI).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


async def unit_digest(
    session: AsyncSession, unit: UnitRef, window: Period, now: datetime
) -> UnitDigest:
    """A unit's morning lists (docs/rates.md, "Morning digest"), most urgent first.

    new: cases that came to the unit within `window` (assigned to the department, or reached
    the township center); the others are the cases the unit holds now, judged at `now` against
    their current stage's deadline (stage_due_at), with "due today" ending at local midnight.
    """
    _check_kind(unit.kind)
    if unit.kind == "department":
        held = and_(
            CaseRow.department_id == unit.id,
            CaseRow.state.in_(DEPARTMENT_HELD),
            CaseRow.handled_by_township.is_(False),
        )
        waiting_state = "assigned"
    else:
        held = and_(
            CaseRow.township_id == unit.id,
            CaseRow.state.in_(TOWNSHIP_HELD),
            or_(CaseRow.state == "township", CaseRow.handled_by_township.is_(True)),
        )
        waiting_state = "township"
    rows = (
        await session.execute(
            select(CaseRow.number, CaseRow.state, CaseRow.stage_due_at)
            .where(held)
            .order_by(CaseRow.stage_due_at, CaseRow.id)
        )
    ).all()
    day_end = _end_of_local_day(now)
    overdue, due_today, waiting = [], [], []
    for number, state, due in rows:
        due = ensure_aware(due) if due is not None else None
        if due is not None and due < now:
            overdue.append(number)
        elif due is not None and due < day_end:
            due_today.append(number)
        if state == waiting_state:
            waiting.append(number)
    return UnitDigest(
        unit=unit,
        new=tuple(await _arrivals(session, unit, window)),
        due_today=tuple(due_today),
        overdue=tuple(overdue),
        waiting=tuple(waiting),
    )


async def _arrivals(session: AsyncSession, unit: UnitRef, window: Period) -> list[str]:
    """Cases that came to the unit in the window, in order of arrival (ix on transitions.at)."""
    in_window = and_(TransitionRow.at >= window.start, TransitionRow.at < window.end)
    stmt = select(CaseRow.number, TransitionRow.data).join(
        CaseRow, CaseRow.id == TransitionRow.case_id
    )
    if unit.kind == "department":
        stmt = stmt.where(
            in_window,
            TransitionRow.action == "assign",
            _not_the_index(CaseRow.department_id) == unit.id,
        )
    else:
        stmt = stmt.where(
            in_window,
            TransitionRow.to_state == "township",
            TransitionRow.from_state != "township",
            _not_the_index(CaseRow.township_id) == unit.id,
        )
    rows = await session.execute(stmt.order_by(TransitionRow.at, TransitionRow.id))
    seen: dict[str, None] = {}
    for number, data in rows:
        # A department's arrivals are assignments to it, not an earlier one to another unit.
        if unit.kind == "department" and (data or {}).get("department_id") != unit.id:
            continue
        seen.setdefault(number, None)
    return list(seen)
