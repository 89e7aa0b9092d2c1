"""The dashboard's lists: stuck cases, the period's cases, CSV rows and failed messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.analytics.timeliness import late
from storage.dashboard.filters import (
    CaseFilter,
    aware,
    count_cases,
    open_conditions,
    period_conditions,
    unit_names,
)
from storage.outbox import FailedDelivery, failed_deliveries, failed_delivery_count
from storage.rows import (
    AreaRow,
    CaseRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    TransitionRow,
)
from storage.sql import dialect_of
from workflow.clock import ensure_aware
from workflow.model import State
from workflow.states import holder_of


@dataclass(frozen=True)
class StuckCase:
    """An open case, who holds it and since when."""

    number: str
    state: str
    holder: str
    holder_unit: dict[str, str] | None
    held_since: datetime
    stage_due_at: datetime | None
    due_at: datetime | None
    category: dict[str, str]
    township: dict[str, str]
    grid: dict[str, str]
    description: str
    supervise_count: int
    delivery_failed: bool


@dataclass(frozen=True)
class ListedCase:
    number: str
    state: str
    created_at: datetime
    due_at: datetime | None
    closed_at: datetime | None
    category: dict[str, str]
    township: dict[str, str]
    grid: dict[str, str]
    department: dict[str, str] | None
    description: str
    rating: str | None
    delivery_failed: bool


@dataclass
class ExportedCase:
    """One CSV line: the case, its units and when it reached each stage."""

    case: ListedCase
    village: dict[str, str]
    deadline_class: str
    handled_by_township: bool
    anonymous: bool
    reporter_name: str | None
    contact_phone: str | None
    location_text: str | None
    reopen_count: int
    supervise_count: int
    rating_comment: str | None
    first_response_at: datetime | None
    # Late by the rates' rule (storage/analytics/timeliness.py), judged at the export's time,
    # against this deadline: the original one, which a reopening does not move.
    overdue: bool = False
    original_due_at: datetime | None = None
    stages: dict[str, datetime | None] = field(default_factory=dict)


# The stage columns of the CSV: (column, how it is found in the trail).
#   first:<state>   the first time the case entered that state
#   first@<action>  the first entry with that action;  last@<action>  the latest one
STAGE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("screening_at", ("first:screening",)),
    ("screened_at", ("first@screen_valid",)),
    ("township_at", ("first:township",)),
    ("county_at", ("first:county",)),
    ("assigned_at", ("last@assign",)),
    ("accepted_at", ("last@accept", "last@handle_locally")),
    ("returned_at", ("last@return",)),
    ("resolved_at", ("last@resolve",)),
    ("rated_at", ("last@rate",)),
    ("supervised_at", ("last@supervise",)),
)


def _cases_with_names(*extra: Any) -> Any:
    """SELECT of cases joined to their grid, township, category and department (if any)."""
    grid, township = aliased(AreaRow), aliased(AreaRow)
    category, department = aliased(CategoryRow), aliased(DepartmentRow)
    query = (
        select(CaseRow, grid, township, category, department, *extra)
        .join(grid, grid.id == CaseRow.grid_id)
        .join(township, township.id == CaseRow.township_id)
        .join(category, category.id == CaseRow.category_id)
        .outerjoin(department, department.id == CaseRow.department_id)
    )
    return query


async def stuck_cases(
    session: AsyncSession,
    f: CaseFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    delivery_failed: bool = False,
) -> tuple[int, list[StuckCase]]:
    """Every open case with its holder, longest held first; (total, this page). With
    delivery_failed, only those a message about could not be delivered."""
    conds = open_conditions(f)
    if delivery_failed:
        conds.append(CaseRow.delivery_failed.is_(True))
    total = await count_cases(session, conds)
    query = _cases_with_names()
    rows = await session.execute(
        query.where(*conds)
        .order_by(CaseRow.stage_entered_at, CaseRow.id)
        .offset(offset)
        .limit(limit)
    )
    found = []
    for case, g, t, cat, dept in rows:
        holder = holder_of(State(case.state), case.handled_by_township)
        unit = {
            "grid_leader": unit_names(g),
            "township": unit_names(t),
            "department": unit_names(dept) if dept is not None else None,
        }.get(holder.value)
        found.append(
            StuckCase(
                number=case.number,
                state=case.state,
                holder=holder.value,
                holder_unit=unit,
                held_since=ensure_aware(case.stage_entered_at or case.created_at),
                stage_due_at=aware(case.stage_due_at),
                due_at=aware(case.due_at),
                category=unit_names(cat),
                township=unit_names(t),
                grid=unit_names(g),
                description=case.description,
                supervise_count=case.supervise_count,
                delivery_failed=case.delivery_failed,
            )
        )
    return total, found


def _listed(case: CaseRow, g: Any, t: Any, cat: Any, dept: Any) -> ListedCase:
    return ListedCase(
        number=case.number,
        state=case.state,
        created_at=ensure_aware(case.created_at),
        due_at=aware(case.due_at),
        closed_at=aware(case.closed_at),
        category=unit_names(cat),
        township=unit_names(t),
        grid=unit_names(g),
        department=unit_names(dept) if dept is not None else None,
        description=case.description,
        rating=case.rating,
        delivery_failed=case.delivery_failed,
    )


async def list_cases(
    session: AsyncSession, f: CaseFilter, *, offset: int = 0, limit: int = 50
) -> tuple[int, list[ListedCase]]:
    """Cases of the period, newest first; (total, this page)."""
    conds = period_conditions(f, dialect_of(session))
    total = await count_cases(session, conds)
    query = _cases_with_names()
    rows = await session.execute(
        query.where(*conds)
        .order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, [_listed(*row) for row in rows]


async def export_cases(
    session: AsyncSession, f: CaseFilter, now: datetime, *, batch: int = 1000
) -> AsyncIterator[list[ExportedCase]]:
    """The period's cases oldest first, in batches, each with its stage times from the trail
    and whether it is late at `now` (the rates' rule, not a definition of its own).

    Batches follow (created_at, id) rather than OFFSET, so the last batch costs what the first
    did however long the period."""
    conds = period_conditions(f, dialect_of(session))
    village, reporter = aliased(AreaRow), aliased(PersonRow)
    query = _cases_with_names(village, reporter.name, late(now).label("late"))
    query = query.join(village, village.id == CaseRow.village_id).outerjoin(
        reporter, reporter.id == CaseRow.reporter_id
    )
    after: tuple[datetime, int] | None = None
    while True:
        page_conds = list(conds)
        if after is not None:
            page_conds.append(tuple_(CaseRow.created_at, CaseRow.id) > tuple_(*after))
        rows = (
            await session.execute(
                query.where(*page_conds).order_by(CaseRow.created_at, CaseRow.id).limit(batch)
            )
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        after = (last.created_at, last.id)
        stages = await _stage_times(session, [row[0].id for row in rows])
        yield [
            ExportedCase(
                case=_listed(c, g, t, cat, dept),
                village=unit_names(v),
                deadline_class=c.deadline_class,
                handled_by_township=c.handled_by_township,
                anonymous=c.anonymous,
                reporter_name=None if c.anonymous else reporter_name,
                contact_phone=None if c.anonymous else c.contact_phone,
                location_text=c.location_text,
                reopen_count=c.reopen_count,
                supervise_count=c.supervise_count,
                rating_comment=c.rating_comment,
                first_response_at=aware(c.first_response_at),
                overdue=bool(is_late),
                original_due_at=aware(c.original_due_at or c.due_at),
                stages=stages.get(c.id, {}),
            )
            for c, g, t, cat, dept, v, reporter_name, is_late in rows
        ]
        if len(rows) < batch:
            return


async def _stage_times(
    session: AsyncSession, case_ids: list[int]
) -> dict[int, dict[str, datetime | None]]:
    """Stage columns of many cases from one read of their trails (the (case_id, seq) index)."""
    trail = await session.execute(
        select(
            TransitionRow.case_id,
            TransitionRow.action,
            TransitionRow.to_state,
            TransitionRow.from_state,
            TransitionRow.at,
        )
        .where(TransitionRow.case_id.in_(case_ids))
        .order_by(TransitionRow.case_id, TransitionRow.seq)
    )
    found: dict[int, dict[str, datetime]] = {}
    for case_id, action, to_state, from_state, at in trail:
        seen = found.setdefault(case_id, {})
        at = ensure_aware(at)
        seen.setdefault(f"first@{action}", at)
        seen[f"last@{action}"] = at
        if to_state != from_state:
            seen.setdefault(f"first:{to_state}", at)
    result: dict[int, dict[str, datetime | None]] = {}
    for case_id in case_ids:
        seen = found.get(case_id, {})
        result[case_id] = {
            column: max((seen[k] for k in keys if k in seen), default=None)
            for column, keys in STAGE_COLUMNS
        }
    return result


async def failed_messages(
    session: AsyncSession, *, offset: int = 0, limit: int = 50, case_number: str | None = None
) -> tuple[int, list[FailedDelivery]]:
    """Outbox messages given up on (blocked bot, chat gone), newest failure first, with how
    many there are: the outbox's own query (storage/outbox.py)."""
    total = await failed_delivery_count(session, case_number)
    found = await failed_deliveries(session, limit, offset=offset, case_number=case_number)
    return total, found
