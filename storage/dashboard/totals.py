"""The overview page's numbers: totals of the period, the open snapshot and the daily trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.analytics.timeliness import overdue_open
from storage.dashboard.filters import (
    ACTIVE,
    CaseFilter,
    count_cases,
    open_conditions,
    period_conditions,
    unit_names,
)
from storage.outbox import failed_delivery_count
from storage.rows import AreaRow, CaseRow, CategoryRow
from storage.sql import dialect_of
from workflow.clock import SHANGHAI

UTC_OFFSET_HOURS = 8  # Asia/Shanghai has kept +08:00 without daylight saving since 1991


@dataclass(frozen=True)
class Count:
    """One line of a totals table: the unit's names (None for a state) and how many cases."""

    key: str
    names: dict[str, str] | None
    count: int


@dataclass
class Overview:
    """Everything the overview page shows apart from the rates and the stuck list."""

    new_cases: int
    open_now: int
    overdue_now: int
    stage_overdue_now: int
    due_today: int
    delivery_failed_open: int
    failed_messages: int
    by_state_period: dict[str, int]
    by_state_open: dict[str, int]
    by_category: list[Count]
    by_township: list[Count]
    by_grid: list[Count]
    trend: list[tuple[date, int]]


def shanghai_day_start(when: datetime) -> datetime:
    """Midnight in Asia/Shanghai of the day `when` falls on."""
    local = when.astimezone(SHANGHAI)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def has_cases(session: AsyncSession) -> bool:
    """Whether any case exists at all (a first start shows how to make one)."""
    return (await session.execute(select(CaseRow.id).limit(1))).first() is not None


async def overview(
    session: AsyncSession, f: CaseFilter, now: datetime, *, top_grids: int = 10
) -> Overview:
    """Totals of the period and the open snapshot, each one bounded query."""
    dialect = dialect_of(session)
    period = period_conditions(f, dialect)

    by_state_period = {
        state: count
        for state, count in await session.execute(
            select(CaseRow.state, func.count()).where(*period).group_by(CaseRow.state)
        )
    }
    by_state_open = {
        state: count
        for state, count in await session.execute(
            select(CaseRow.state, func.count()).where(*open_conditions(f)).group_by(CaseRow.state)
        )
    }
    active = open_conditions(f, ACTIVE)
    # The rates' rule: past the original deadline; a reopening's fresh limit does not excuse it.
    overdue = await count_cases(session, [*active, overdue_open(now)])
    stage_overdue = await count_cases(session, [*active, CaseRow.stage_due_at < now])
    tomorrow = shanghai_day_start(now) + timedelta(days=1)
    due_today = await count_cases(
        session, [*active, CaseRow.due_at >= now, CaseRow.due_at < tomorrow]
    )
    delivery_failed = await count_cases(
        session, [*open_conditions(f), CaseRow.delivery_failed.is_(True)]
    )
    failed_messages = await failed_delivery_count(session)

    by_category = await _grouped(session, CaseRow.category_id, CategoryRow, period)
    by_township = await _grouped(session, CaseRow.township_id, AreaRow, period)
    by_grid = await _grouped(session, CaseRow.grid_id, AreaRow, period, limit=top_grids)
    return Overview(
        new_cases=sum(by_state_period.values()),
        open_now=sum(by_state_open.values()),
        overdue_now=overdue,
        stage_overdue_now=stage_overdue,
        due_today=due_today,
        delivery_failed_open=delivery_failed,
        failed_messages=failed_messages,
        by_state_period=by_state_period,
        by_state_open=by_state_open,
        by_category=by_category,
        by_township=by_township,
        by_grid=by_grid,
        trend=await _trend(session, f, period, dialect),
    )


async def _grouped(
    session: AsyncSession,
    column: Any,
    names: Any,
    conds: list[ColumnElement[bool]],
    *,
    limit: int | None = None,
) -> list[Count]:
    counted = (
        select(column.label("unit_id"), func.count().label("n"))
        .where(*conds)
        .group_by(column)
        .order_by(func.count().desc(), column)
    )
    if limit is not None:
        counted = counted.limit(limit)
    sub = counted.subquery()
    rows = await session.execute(
        select(names, sub.c.n)
        .join(sub, sub.c.unit_id == names.id)
        .order_by(sub.c.n.desc(), names.code)
    )
    return [Count(unit.code, unit_names(unit), n) for unit, n in rows]


def _local_day(column: Any, dialect: str) -> Any:
    """The Asia/Shanghai calendar day of a stored UTC time, as 'YYYY-MM-DD', in SQL."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM-DD")
    return func.date(column, f"+{UTC_OFFSET_HOURS} hours")


async def _trend(
    session: AsyncSession, f: CaseFilter, conds: list[ColumnElement[bool]], dialect: str
) -> list[tuple[date, int]]:
    """Cases reported per local day of the period, days without any included."""
    day = _local_day(CaseRow.created_at, dialect)
    counts = {
        str(d): n
        for d, n in await session.execute(select(day, func.count()).where(*conds).group_by(day))
    }
    first = f.start.astimezone(SHANGHAI).date()
    last = (f.end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [(d, counts.get(d.isoformat(), 0)) for d in days]
