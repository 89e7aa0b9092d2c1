"""Cases: the case, its trail, photos, number counters and reminders already handled."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.rows.base import Base, UtcDateTime


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_state_stage_due", "state", "stage_due_at"),
        Index("ix_cases_state_due", "state", "due_at"),
        Index("ix_cases_department_state", "department_id", "state"),
        Index("ix_cases_township_state", "township_id", "state"),
        Index("ix_cases_grid_created", "grid_id", "created_at"),
        Index("ix_cases_category_created", "category_id", "created_at"),
        Index("ix_cases_reporter", "reporter_id", "created_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    deadline_class: Mapped[str] = mapped_column(String(16))
    grid_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    township_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    reporter_role: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    location_text: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    handled_by_township: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate_of: Mapped[str | None] = mapped_column(String(32), index=True)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    supervise_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[str | None] = mapped_column(String(24))
    rating_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    stage_entered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    stage_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    due_basis_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    # The deadline counted from the report, kept when a reopening restarts due_at (the rates).
    original_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When the sweeper must next look at this case (reminder, supervision, auto-close); indexed
    # so a sweep reads only what is due, however many cases the county has.
    next_reminder_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    # A message about this case could not be delivered (blocked bot, chat gone): someone must
    # reach that party another way.
    delivery_failed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=0)


class TransitionRow(Base):
    """The audit trail: append-only, one row per event on a case."""

    __tablename__ = "case_transitions"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_case_transitions_case_seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    actor_role: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class AttachmentRow(Base):
    """One uploaded file; the bytes live in the media store under their sha256."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # photo
    mime_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    public_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(16))
    channel_file_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CaseAttachmentRow(Base):
    """Links a photo to the case (report photos) and to the trail entry that brought it."""

    __tablename__ = "case_attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("case_transitions.id"))
    attachment_id: Mapped[int] = mapped_column(ForeignKey("attachments.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)


class CaseCounterRow(Base):
    """Per-day case number sequence; numbers are never handed out twice."""

    __tablename__ = "case_counters"
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class CaseReminderRow(Base):
    """A reminder or escalation already handled: once per case, stage and threshold."""

    __tablename__ = "case_reminders"
    __table_args__ = (
        UniqueConstraint(
            "case_id", "stage_key", "threshold", name="uq_case_reminders_case_stage_threshold"
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    # The state and the moment the case entered it: a case back in a state is a new stage.
    stage_key: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[str] = mapped_column(String(24))  # before | at | overdue:N | supervise:N
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # False when a later threshold of the same stage had also passed (downtime): recorded, not
    # sent, so people get one current reminder rather than a backlog.
    sent: Mapped[bool] = mapped_column(Boolean, default=True)
