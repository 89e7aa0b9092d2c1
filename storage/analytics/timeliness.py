"""When a case is on time or late (docs/rates.md, on-time rate): the one rule that the rates,
the overview's overdue count, the CSV's overdue column and the case page all read.

A case is judged against its ORIGINAL deadline (`original_due_at`, the class limit counted from
the report): a reopening gives the unit a fresh `due_at` for its reminders, but reopening never
makes a late case on time. Only the resolution that stands counts (`resolved_at` of a case in
RESOLVED_STATES: a resolution the reporter rejected does not), never the closing time
(`closed_at` is the rating or the automatic close, days after the result).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_

from storage.analytics.scope import NOT_A_UNITS_WORK, RESOLVED_STATES
from storage.rows import CaseRow
from workflow.model import Case


def judged_deadline() -> ColumnElement[Any]:
    """The deadline the rates judge: the original one (due_at for rows from before it was kept)."""
    return func.coalesce(CaseRow.original_due_at, CaseRow.due_at)


def is_resolved() -> ColumnElement[bool]:
    """A result was reported and stands."""
    return CaseRow.state.in_(RESOLVED_STATES)


def resolved_on_time() -> ColumnElement[bool]:
    return and_(is_resolved(), CaseRow.resolved_at <= judged_deadline())


def overdue_open(as_of: datetime) -> ColumnElement[bool]:
    """Not resolved (open, reopened or under supervision) and past the deadline at `as_of`."""
    return and_(~is_resolved(), judged_deadline() < as_of)


def late(as_of: datetime) -> ColumnElement[bool]:
    """Resolved after the deadline, or unresolved and past it; invalid and duplicate reports
    are nobody's work and never late."""
    return and_(
        CaseRow.state.not_in(NOT_A_UNITS_WORK),
        or_(and_(is_resolved(), CaseRow.resolved_at > judged_deadline()), overdue_open(as_of)),
    )


def case_is_late(case: Case, now: datetime) -> bool:
    """`late` for one loaded case (the case page), the same rule in Python."""
    due = case.original_due_at or case.due_at
    if due is None or case.state.value in NOT_A_UNITS_WORK:
        return False
    if case.state.value in RESOLVED_STATES:
        return case.resolved_at is not None and case.resolved_at > due
    return due < now
