"""The rates of docs/rates.md per unit and for the whole county."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession

from storage.analytics.rankings import setbacks
from storage.analytics.scope import (
    SATISFIED_RATINGS,
    UNRATED_ENDINGS,
    base_filter,
    check_kind,
    units,
    units_by_id,
)
from storage.analytics.timeliness import is_resolved, overdue_open, resolved_on_time
from storage.rows import AreaRow, CaseRow
from storage.sql import dialect_of
from workflow.clock import SHANGHAI
from workflow.ports import (
    Period,
    UnitRates,
    UnitRef,
)


def _hours_between(session: AsyncSession, start: Any, end: Any) -> ColumnElement[Any]:
    """end - start in hours, in SQL: neither database has one spelling for it."""
    if dialect_of(session) == "postgresql":
        return func.extract("epoch", end - start) / 3600.0
    return (func.julianday(end) - func.julianday(start)) * 24.0


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(when((condition, 1), else_=0)), 0)


def _rate_columns(session: AsyncSession, as_of: datetime) -> list[ColumnElement[Any]]:
    """The counts of docs/rates.md over whatever set of cases the query selects."""
    resolved = is_resolved()
    hours = _hours_between(session, CaseRow.created_at, CaseRow.resolved_at)
    # An unrated closure is never satisfied, even if a rating somehow stayed on it.
    satisfied = and_(CaseRow.rating.in_(SATISFIED_RATINGS), CaseRow.state.not_in(UNRATED_ENDINGS))
    return [
        func.count().label("cases"),
        _count_if(CaseRow.accepted_at.is_not(None)).label("replied"),
        _count_if(resolved).label("resolved"),
        _count_if(resolved_on_time()).label("resolved_on_time"),
        _count_if(overdue_open(as_of)).label("overdue_open"),
        _count_if(CaseRow.rating.is_not(None)).label("rated"),
        _count_if(satisfied).label("satisfied"),
        func.avg(when((resolved, hours), else_=None)).label("avg_hours"),
    ]


# The UnitRates counts, labelled so in _rate_columns.
_COUNTS = ("cases", "replied", "resolved", "resolved_on_time", "overdue_open", "rated", "satisfied")


def _rates(
    unit: UnitRef, row: Any | None, returned: int, reopened: int, late_returns: int
) -> UnitRates:
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
        late_returns=late_returns,
    )


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
    check_kind(kind)
    as_of = as_of or datetime.now(SHANGHAI)
    group = CaseRow.department_id if kind == "department" else CaseRow.township_id
    filters = base_filter(
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
    late_returns: dict[int, int] = {}
    for event in events:
        unit_id = event.department_id if kind == "department" else event.township_id
        if unit_id is None:
            continue
        counter = returned if event.event == "returned" else reopened
        counter[unit_id] = counter.get(unit_id, 0) + 1
        if event.late:
            late_returns[unit_id] = late_returns.get(unit_id, 0) + 1
    wanted = township_id if kind == "township" else department_id
    listed = [u for u in await units(session, kind) if wanted is None or u.id == wanted]
    seen = {u.id for u in listed}
    extra = (set(aggregates) | set(returned) | set(reopened)) - seen
    if wanted is not None:
        extra &= {wanted}
    listed += sorted((await units_by_id(session, kind, extra)).values(), key=lambda u: u.id)
    return [
        _rates(
            u,
            aggregates.get(u.id),
            returned.get(u.id, 0),
            reopened.get(u.id, 0),
            late_returns.get(u.id, 0),
        )
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
        *base_filter(period, category_id=category_id)
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
    late_returns = sum(1 for e in events if e.late)
    return _rates(unit, row, returned, len(events) - returned, late_returns)
