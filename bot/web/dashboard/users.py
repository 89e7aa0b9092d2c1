"""Dashboard accounts and signed-in sessions: the rules (names, passwords, tokens); the rows
are storage/accounts.py's."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.web.dashboard.passwords import (
    MIN_LENGTH,
    check_password,
    hash_password,
    needs_rehash,
    rehash_password,
    weakness,
)
from storage.accounts import SqlAccounts
from storage.rows import DashboardUserRow

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
    person_id: int | None = None  # the person of the org file the account is linked to


def token_hash(token: str) -> str:
    """Only this is stored: a stolen sessions table cannot be replayed as cookies."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_new_password(username: str, password: str) -> None:
    """Refuse an empty or guessable password before anything is written."""
    reason = weakness(password, username)
    if reason is not None:
        raise AccountRefused(reason, min=MIN_LENGTH)


async def add_user(
    accounts: SqlAccounts,
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
    if await accounts.username_taken(username):
        raise AccountRefused("user_exists", username=username)
    person_id = await _person(accounts, person_code) if person_code else None
    name = (display_name or "").strip() or None
    row = await accounts.add(username, hash_password(password), name, person_id, now)
    await accounts.sync_desk(person_id, now)
    return row


async def _person(accounts: SqlAccounts, code: str) -> int:
    """The active person with this code, whose workspace chat the code can name."""
    person_id = await accounts.person_id(code.strip())
    if person_id is None:
        raise AccountRefused("person_unknown", code=code)
    if await accounts.desk_chat(person_id) is None:
        raise AccountRefused("person_code_unusable", code=code)
    return person_id


async def link_user(
    accounts: SqlAccounts, username: str, person_code: str | None, *, now: datetime
) -> None:
    """Link an account to a person (None: unlink it); the workspace chats follow (the caller
    commits). The account's sessions stay: the next request opens the new person's chat."""
    user_id = await accounts.user_id(username.strip())
    if user_id is None:
        raise AccountRefused("user_unknown", username=username)
    person_id = await _person(accounts, person_code) if person_code else None
    before = await accounts.set_person(user_id, person_id)
    await accounts.sync_desk(before, now)
    await accounts.sync_desk(person_id, now)


async def list_users(accounts: SqlAccounts) -> list[dict[str, Any]]:
    """Every account with the person it is linked to, oldest first."""
    return await accounts.listing()


async def disable_user(accounts: SqlAccounts, username: str, *, now: datetime) -> None:
    """Deactivate an account and sign it out everywhere; the caller commits."""
    row = await accounts.by_username(username.strip())
    if row is None:
        raise AccountRefused("user_unknown", username=username)
    await accounts.deactivate(row.id)
    await accounts.sync_desk(row.person_id, now)


async def users_exist(accounts: SqlAccounts) -> bool:
    """Whether any active account exists (then even a loopback dashboard asks for a login)."""
    return await accounts.any_active()


async def authenticate(
    accounts: SqlAccounts, username: str, password: str, now: datetime
) -> DashboardUserRow | None:
    """The active account these credentials open, else None; records the login time, and
    rehashes a password stored with weaker scrypt factors than today's (the caller commits)."""
    row = await accounts.by_username(username.strip())
    if row is None or not row.active:
        await check_password(password, None)  # the same cost as a real check
        return None
    if not await check_password(password, row.password_hash):
        return None
    new_hash = await rehash_password(password) if needs_rehash(row.password_hash) else None
    await accounts.record_login(row, now, new_hash)
    return row


async def start_session(
    accounts: SqlAccounts, user_id: int, now: datetime, lifetime: timedelta
) -> str:
    """A fresh random token for the cookie; expired sessions are swept on the way."""
    token = secrets.token_urlsafe(32)
    await accounts.add_session(token_hash(token), user_id, now, now + lifetime)
    return token


async def session_user(accounts: SqlAccounts, token: str, now: datetime) -> SignedIn | None:
    """The signed-in account for a cookie token, if the session is unexpired and still active."""
    if not token or len(token) > 128:
        return None
    found = await accounts.session_with_user(token_hash(token))
    if found is None:
        return None
    row, user = found
    if row.expires_at <= now or not user.active:
        return None
    return SignedIn(user.id, user.username, user.display_name, row.expires_at, user.person_id)


async def end_session(accounts: SqlAccounts, token: str) -> None:
    """Sign a browser out: its token stops working at once."""
    await accounts.end_session(token_hash(token))
