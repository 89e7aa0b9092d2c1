"""Dashboard accounts and signed-in sessions: rows in dashboard_users and dashboard_sessions.

Only the SQL; the rules (which names and passwords are accepted, hashing, tokens) are the
dashboard's (bot/web/dashboard/users.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import DashboardSessionRow, DashboardUserRow, PersonRow


class SqlAccounts:
    """Accounts and sessions on the caller's session; the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def username_taken(self, username: str) -> bool:
        """Whether an account has this name, in any case (Leader and leader are one name)."""
        taken = await self.session.execute(
            select(DashboardUserRow.id).where(
                func.lower(DashboardUserRow.username) == username.lower()
            )
        )
        return taken.first() is not None

    async def person_id(self, code: str) -> int | None:
        """The person of the org file with this code."""
        result = await self.session.execute(select(PersonRow.id).where(PersonRow.code == code))
        return result.scalar_one_or_none()

    async def add(
        self, username: str, password_hash: str, display_name: str | None,
        person_id: int | None, now: datetime,
    ) -> DashboardUserRow:  # fmt: skip
        row = DashboardUserRow(
            username=username,
            password_hash=password_hash,
            display_name=display_name,
            person_id=person_id,
            active=True,
            created_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def listing(self) -> list[dict[str, Any]]:
        """Every account with the person it is linked to, oldest first."""
        rows = await self.session.execute(
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

    async def user_id(self, username: str) -> int | None:
        result = await self.session.execute(
            select(DashboardUserRow.id).where(DashboardUserRow.username == username)
        )
        return result.scalar_one_or_none()

    async def by_username(self, username: str) -> DashboardUserRow | None:
        result = await self.session.execute(
            select(DashboardUserRow).where(DashboardUserRow.username == username)
        )
        return result.scalar_one_or_none()

    async def deactivate(self, user_id: int) -> None:
        """Inactive, and signed out everywhere."""
        await self.session.execute(
            update(DashboardUserRow).where(DashboardUserRow.id == user_id).values(active=False)
        )
        await self.session.execute(
            delete(DashboardSessionRow).where(DashboardSessionRow.user_id == user_id)
        )

    async def any_active(self) -> bool:
        query = select(exists().where(DashboardUserRow.active.is_(True)))
        return bool((await self.session.execute(query)).scalar())

    async def record_login(
        self, row: DashboardUserRow, now: datetime, password_hash: str | None = None
    ) -> None:
        """The login time, and the password's new hash when it was rehashed (saved on commit)."""
        if password_hash is not None:
            row.password_hash = password_hash
        row.last_login_at = now

    async def add_session(
        self, token_hash: str, user_id: int, now: datetime, expires_at: datetime
    ) -> None:
        """A signed-in session; expired sessions are swept on the way."""
        await self.session.execute(
            delete(DashboardSessionRow).where(DashboardSessionRow.expires_at <= now)
        )
        self.session.add(
            DashboardSessionRow(
                token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
            )
        )
        await self.session.flush()

    async def session_with_user(
        self, token_hash: str
    ) -> tuple[DashboardSessionRow, DashboardUserRow] | None:
        found = (
            await self.session.execute(
                select(DashboardSessionRow, DashboardUserRow)
                .join(DashboardUserRow, DashboardUserRow.id == DashboardSessionRow.user_id)
                .where(DashboardSessionRow.token_hash == token_hash)
            )
        ).first()
        return None if found is None else (found[0], found[1])

    async def end_session(self, token_hash: str) -> None:
        await self.session.execute(
            delete(DashboardSessionRow).where(DashboardSessionRow.token_hash == token_hash)
        )
