"""Cases keep their original deadline; a township's pass-up gives up its reply.

`cases.original_due_at` is the class limit counted from the report. A reopening restarts
`due_at` from the reopening (the unit's fresh limit, for reminders), but the rates judge
timeliness against the original deadline, so reopening never turns a late case into an on-time
one (docs/rates.md, on-time rate).

Backfill: a case never reopened got its `due_at` from the report, so that is its original
deadline. A reopened case's first deadline is recomputed from its report time with the stored
working-day calendar and the default class limits (2 h, 2 and 7 working days): the configured
limits are settings this migration cannot read; the next `shuoshi calendar load` recomputes open
cases with the configured ones.

A case a township handled itself and then passed up to the county center still had the
township's `accepted_at`, which the reply rate counted; the county center holds it unassigned,
so it is cleared (the workflow now clears it on a pass-up, as it does on a return).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op

from storage.rows.base import UtcDateTime
from workflow.deadlines import WorkCalendar, deadline
from workflow.model import DeadlineClass
from workflow.policy import default_class_limits

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("original_due_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE cases SET original_due_at = due_at WHERE reopen_count = 0")
    op.execute(
        "UPDATE cases SET accepted_at = NULL WHERE state = 'county' AND accepted_at IS NOT NULL"
    )
    _backfill_reopened(op.get_bind())


def _backfill_reopened(bind: sa.Connection) -> None:
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer()),
        sa.column("deadline_class", sa.String()),
        sa.column("created_at", UtcDateTime()),
        sa.column("original_due_at", UtcDateTime()),
        sa.column("reopen_count", sa.Integer()),
    )
    rows = bind.execute(
        sa.select(cases.c.id, cases.c.deadline_class, cases.c.created_at).where(
            cases.c.reopen_count > 0, cases.c.original_due_at.is_(None)
        )
    ).all()
    if not rows:
        return
    years = sa.table("calendar_years", sa.column("year", sa.Integer()))
    days = sa.table("calendar_days", sa.column("day", sa.Date()), sa.column("is_workday"))
    calendar = WorkCalendar(known_years={y for (y,) in bind.execute(sa.select(years.c.year))})
    for day, is_workday in bind.execute(sa.select(days.c.day, days.c.is_workday)):
        (calendar.workdays if is_workday else calendar.holidays).add(day)
    limits = default_class_limits()
    for case_id, deadline_class, created_at in rows:
        limit = limits.get(DeadlineClass(deadline_class), limits[DeadlineClass.GENERAL])
        due = deadline(created_at.astimezone(UTC), limit, calendar).at
        bind.execute(sa.update(cases).where(cases.c.id == case_id).values(original_due_at=due))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of cases breaks the trail's foreign keys.
    op.drop_column("cases", "original_due_at")
