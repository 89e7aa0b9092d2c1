"""A unit's morning lists: new, due today, overdue, waiting cases and late returns
(docs/rates.md)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.analytics.rankings import setbacks
from storage.analytics.scope import check_kind, not_the_index
from storage.rows import CaseRow, TransitionRow
from workflow.clock import SHANGHAI, ensure_aware
from workflow.ports import (
    Period,
    UnitDigest,
    UnitRef,
)

# The states in which a unit holds a case and must act on it (the digest's lists).
DEPARTMENT_HELD = ("assigned", "in_progress")
TOWNSHIP_HELD = ("township", "in_progress")


def _end_of_local_day(now: datetime) -> datetime:
    day = now.astimezone(SHANGHAI).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


async def unit_digest(
    session: AsyncSession, unit: UnitRef, window: Period, now: datetime
) -> UnitDigest:
    """A unit's morning lists (docs/rates.md, "Morning digest"), most urgent first.

    new: cases that came to the unit within `window` (assigned to the department, or reached
    the township center); the others are the cases the unit holds now, judged at `now` against
    their current stage's deadline (stage_due_at), with "due today" ending at local midnight;
    late_returns: a department's returns within `window` made after its stage deadline.
    """
    check_kind(unit.kind)
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
    late_returns: tuple[str, ...] = ()
    if unit.kind == "department":
        # The department's own returns since the last digest that came after its deadline.
        events = await setbacks(session, window, department_id=unit.id)
        late_returns = tuple(dict.fromkeys(e.number for e in events if e.late))
    return UnitDigest(
        unit=unit,
        new=tuple(await _arrivals(session, unit, window)),
        due_today=tuple(due_today),
        overdue=tuple(overdue),
        waiting=tuple(waiting),
        late_returns=late_returns,
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
            not_the_index(CaseRow.department_id) == unit.id,
        )
    else:
        stmt = stmt.where(
            in_window,
            TransitionRow.to_state == "township",
            TransitionRow.from_state != "township",
            not_the_index(CaseRow.township_id) == unit.id,
        )
    rows = await session.execute(stmt.order_by(TransitionRow.at, TransitionRow.id))
    seen: dict[str, None] = {}
    for number, data in rows:
        # A department's arrivals are assignments to it, not an earlier one to another unit.
        if unit.kind == "department" and (data or {}).get("department_id") != unit.id:
            continue
        seen.setdefault(number, None)
    return list(seen)
