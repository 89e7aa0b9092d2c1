"""Running the service: leases, digests already sent, dashboard accounts and sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.rows.base import Base, UtcDateTime


class LeaseRow(Base):
    """Who may do a job that only one process at a time may do (deliver for a bot token),
    until when: taken over by another process only once it expired."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


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


class GenerationRow(Base):
    """A counter bumped in the same transaction as every change to a set of rarely changing
    tables ("org": areas, categories, departments, the calendar), so that each process's copy
    of them (storage/org_cache.py) knows, from one integer, when to reread."""

    __tablename__ = "generations"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
