"""SQLAlchemy rows: the schema every migration builds and every repository reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (no tz support) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AreaRow(Base):
    """County, township/street, village/community or grid; a tree by parent_id."""

    __tablename__ = "areas"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # county|township|street|village|community|grid
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    # Denormalised so a grid's township is one lookup, not a walk up the tree.
    township_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)


class CategoryRow(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    deadline_class: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DepartmentRow(Base):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ResponsibilityRow(Base):
    """The responsibility list (权责清单): which department owns which category."""

    __tablename__ = "responsibilities"
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), primary_key=True)
    primary: Mapped[bool] = mapped_column(Boolean, default=True)


class PersonRow(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Residents who enrol through a chat have no code in the org file.
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RoleAssignmentRow(Base):
    """A role a person holds, over an area (grid, township) or a department, or county-wide."""

    __tablename__ = "role_assignments"
    __table_args__ = (Index("ix_role_assignments_person_role", "person_id", "role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    role: Mapped[str] = mapped_column(String(32))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)


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


class CalendarYearRow(Base):
    __tablename__ = "calendar_years"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CalendarDayRow(Base):
    """An exception to Monday-Friday: a holiday, or a weekend day that is worked (调休)."""

    __tablename__ = "calendar_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(100))


class OutboxRow(Base):
    """An outgoing message, written with the change that caused it; a sender delivers it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_chat_status", "chat_id", "status"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    case_number: Mapped[str | None] = mapped_column(String(32))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class IdentityRow(Base):
    """A chat account (channel + the channel's user id) linked to a person."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_identities_channel_external_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChatBindingRow(Base):
    """A group chat serving a unit: a grid group, a township, a department, the county..."""

    __tablename__ = "chat_bindings"
    __table_args__ = (
        # PostgreSQL treats NULLs as distinct here: the store checks before it inserts.
        UniqueConstraint(
            "channel", "chat_id", "purpose", "area_id", "department_id",
            name="uq_chat_bindings_binding",
        ),
        Index("ix_chat_bindings_purpose_area", "purpose", "area_id"),
        Index("ix_chat_bindings_purpose_department", "purpose", "department_id"),
    )  # fmt: skip
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    # grid | township | county | department | supervisors | leaders
    purpose: Mapped[str] = mapped_column(String(16))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InviteRow(Base):
    """A one-time code: enrols a chat account in a role, or binds a group chat to a unit."""

    __tablename__ = "invites"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # enrol | bind_chat
    role: Mapped[str | None] = mapped_column(String(32))
    chat_purpose: Mapped[str | None] = mapped_column(String(16))
    area_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # Enrols a person of the org file: the chat account is linked to them.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    used_by: Mapped[str | None] = mapped_column(String(96))  # channel:external_id


class ConversationRow(Base):
    """Where one user stands in one chat: the step and the draft so far."""

    __tablename__ = "conversations"
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(32))
    draft: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class MessageLinkRow(Base):
    """A message the bot sent about a case, so that a reply to it finds the case."""

    __tablename__ = "message_links"
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ProcessedUpdateRow(Base):
    """An incoming update already handled: a redelivered update is ignored."""

    __tablename__ = "processed_updates"
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    # sha256 hex of the channel's key: any key fits, the same way on SQLite and PostgreSQL.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class InboxRow(Base):
    """An incoming update, stored before the channel is told it arrived (Telegram's polling
    offset moves past it only after this row committed); handled from here, in order per chat."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("channel", "update_id", name="uq_inbox_channel_update_id"),
        Index("ix_inbox_channel_status_update", "channel", "status", "update_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[str] = mapped_column(String(64))  # updates of one chat go in order
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the update as the channel sent it
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)


class LeaseRow(Base):
    """Who may do a job that only one process at a time may do (deliver for a bot token),
    until when: taken over by another process only once it expired."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


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


class DigestRunRow(Base):
    """A digest or weekly analysis already sent to one target for one period."""

    __tablename__ = "digest_runs"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # morning | weekly
    target: Mapped[str] = mapped_column(String(96), primary_key=True)  # e.g. department:12
    period: Mapped[str] = mapped_column(String(16), primary_key=True)  # 2026-11-23 | 2026-W48
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DashboardUserRow(Base):
    """A dashboard login (created with `shuoshi user add`); only a password hash is kept."""

    __tablename__ = "dashboard_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class DashboardSessionRow(Base):
    """A signed-in browser; the cookie holds a random token, the table only its hash."""

    __tablename__ = "dashboard_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("dashboard_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebMessageRow(Base):
    """The web chat's history: what a browser chat shows when it (re)connects."""

    __tablename__ = "web_messages"
    __table_args__ = (Index("ix_web_messages_chat_id", "chat_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(4))  # in | out
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    case_number: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
