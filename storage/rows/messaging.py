"""Chats in and out: identities, bindings, invites, conversations, inbox, outbox, web chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.rows.base import Base, UtcDateTime


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
    # A photo's caption (Telegram edits it with editMessageCaption, not editMessageText).
    caption: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # What an edit of the message needs that the case does not say (Outgoing.context): the
    # role its buttons were for, a supervision card's overdue stage. None: nothing kept.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


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


class WebMessageRow(Base):
    """The web chat's history: what a browser chat shows when it (re)connects."""

    __tablename__ = "web_messages"
    __table_args__ = (Index("ix_web_messages_chat_id", "chat_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(4))  # in | out | edit (of an earlier out)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    case_number: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
