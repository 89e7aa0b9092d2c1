"""Dashboard accounts and signed-in sessions: rows in dashboard_users and dashboard_sessions."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.web.dashboard.passwords import (
    MIN_LENGTH,
    check_password,
    hash_password,
    needs_rehash,
    rehash_password,
    weakness,
)
from storage.rows import DashboardSessionRow, DashboardUserRow, PersonRow

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")


class AccountRefused(Exception):
    """A refused account change; `code` names the cli.j2 macro that explains it."""

    def __init__(self, reason: str, /, **params: Any) -> None:
        super().__init__(reason)
        self.code = reason
        self.params = params


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session cookie belongs to."""

    user_id: int
    username: str
    display_name: str | None
    expires_at: datetime


def token_hash(token: str) -> str:
    """Only this is stored: a stolen sessions table cannot be replayed as cookies."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_new_password(username: str, password: str) -> None:
    """Refuse an empty or guessable password before anything is written."""
    reason = weakness(password, username)
    if reason is not None:
        raise AccountRefused(reason, min=MIN_LENGTH)


async def add_user(
    session: AsyncSession,
    username: str,
    password: str,
    *,
    now: datetime,
    display_name: str | None = None,
    person_code: str | None = None,
) -> DashboardUserRow:
    """Create an account; the caller commits."""
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise AccountRefused("user_bad_name", username=username)
    check_new_password(username, password)
    taken = await session.execute(
        select(DashboardUserRow.id).where(func.lower(DashboardUserRow.username) == username.lower())
    )
    if taken.first() is not None:
        raise AccountRefused("user_exists", username=username)
    person_id = None
    if person_code:
        person_id = (
            await session.execute(select(PersonRow.id).where(PersonRow.code == person_code))
        ).scalar_one_or_none()
        if person_id is None:
            raise AccountRefused("person_unknown", code=person_code)
    row = DashboardUserRow(
        username=username,
        password_hash=hash_password(password),
        display_name=(display_name or "").strip() or None,
        person_id=person_id,
        active=True,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def list_users(session: AsyncSession) -> list[dict[str, Any]]:
    """Every account with the person it is linked to, oldest first."""
    rows = await session.execute(
        select(DashboardUserRow, PersonRow.code)
        .outerjoin(PersonRow, PersonRow.id == DashboardUserRow.person_id)
        .order_by(DashboardUserRow.id)
    )
    return [
        {
            "username": u.username,
            "display_name": u.display_name,
            "person": code,
            "active": u.active,
            "created_at": u.created_at,
            "last_login_at": u.last_login_at,
        }
        for u, code in rows
    ]


async def disable_user(session: AsyncSession, username: str) -> None:
    """Deactivate an account and sign it out everywhere; the caller commits."""
    user_id = (
        await session.execute(
            select(DashboardUserRow.id).where(DashboardUserRow.username == username.strip())
        )
    ).scalar_one_or_none()
    if user_id is None:
        raise AccountRefused("user_unknown", username=username)
    await session.execute(
        update(DashboardUserRow).where(DashboardUserRow.id == user_id).values(active=False)
    )
    await session.execute(delete(DashboardSessionRow).where(DashboardSessionRow.user_id == user_id))


async def users_exist(session: AsyncSession) -> bool:
    """Whether any active account exists (then even a loopback dashboard asks for a login)."""
    query = select(exists().where(DashboardUserRow.active.is_(True)))
    return bool((await session.execute(query)).scalar())


async def authenticate(
    session: AsyncSession, username: str, password: str, now: datetime
) -> DashboardUserRow | None:
    """The active account these credentials open, else None; records the login time, and
    rehashes a password stored with weaker scrypt factors than today's (the caller commits)."""
    row = (
        await session.execute(
            select(DashboardUserRow).where(DashboardUserRow.username == username.strip())
        )
    ).scalar_one_or_none()
    if row is None or not row.active:
        await check_password(password, None)  # the same cost as a real check
        return None
    if not await check_password(password, row.password_hash):
        return None
    if needs_rehash(row.password_hash):
        row.password_hash = await rehash_password(password)
    row.last_login_at = now
    return row


async def start_session(
    session: AsyncSession, user_id: int, now: datetime, lifetime: timedelta
) -> str:
    """A fresh random token for the cookie; expired sessions are swept on the way."""
    await session.execute(delete(DashboardSessionRow).where(DashboardSessionRow.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardSessionRow(
            token_hash=token_hash(token), user_id=user_id, created_at=now, expires_at=now + lifetime
        )
    )
    await session.flush()
    return token


async def session_user(session: AsyncSession, token: str, now: datetime) -> SignedIn | None:
    """The signed-in account for a cookie token, if the session is unexpired and still active."""
    if not token or len(token) > 128:
        return None
    found = (
        await session.execute(
            select(DashboardSessionRow, DashboardUserRow)
            .join(DashboardUserRow, DashboardUserRow.id == DashboardSessionRow.user_id)
            .where(DashboardSessionRow.token_hash == token_hash(token))
        )
    ).first()
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or not user.active:
        return None
    return SignedIn(user.id, user.username, user.display_name, row.expires_at)


async def end_session(session: AsyncSession, token: str) -> None:
    """Sign a browser out: its token stops working at once."""
    await session.execute(
        delete(DashboardSessionRow).where(DashboardSessionRow.token_hash == token_hash(token))
    )
