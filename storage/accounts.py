"""Dashboard accounts and signed-in sessions: rows in dashboard_users and dashboard_sessions.

Only the SQL; the rules (which names and passwords are accepted, hashing, tokens) are the
dashboard's (bot/web/dashboard/users.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import DashboardSessionRow, DashboardUserRow, IdentityRow, PersonRow
from storage.sql import upsert
from storage.webchat import CHANNEL, person_chat_id


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
        """The active person of the org file with this code (one the file dropped is not)."""
        result = await self.session.execute(
            select(PersonRow.id).where(PersonRow.code == code, PersonRow.active.is_(True))
        )
        return result.scalar_one_or_none()

    async def set_person(self, user_id: int, person_id: int | None) -> int | None:
        """Link the account to a person (None: to nobody); the person it was linked to."""
        row = await self.session.get(DashboardUserRow, user_id)
        if row is None:
            return None
        before, row.person_id = row.person_id, person_id
        await self.session.flush()
        return before

    async def desk_chat(self, person_id: int) -> str | None:
        """The web chat of the person's staff workspace ("p-<code>"), if the person is active
        and has a code that can name a chat."""
        code = (
            await self.session.execute(
                select(PersonRow.code).where(PersonRow.id == person_id, PersonRow.active.is_(True))
            )
        ).scalar_one_or_none()
        return person_chat_id(code) if code else None

    async def sync_desk(self, person_id: int | None, now: datetime) -> str | None:
        """Keep a person's workspace chat account in step with the accounts linked to them:
        while an active account is linked, the chat "p-<code>" is theirs (so the notifier
        reaches it before they ever open it); once none is, it goes (nobody could read what
        arrived there). Returns the chat while it is theirs."""
        if person_id is None:
            return None
        code = (
            await self.session.execute(select(PersonRow.code).where(PersonRow.id == person_id))
        ).scalar_one_or_none()
        chat_id = person_chat_id(code) if code else None
        if chat_id is None:
            return None
        linked = await self.session.execute(
            select(DashboardUserRow.id)
            .join(PersonRow, PersonRow.id == DashboardUserRow.person_id)
            .where(
                DashboardUserRow.person_id == person_id,
                DashboardUserRow.active.is_(True),
                PersonRow.active.is_(True),
            )
            .limit(1)
        )
        if linked.first() is None:
            await self.session.execute(
                delete(IdentityRow).where(
                    IdentityRow.channel == CHANNEL, IdentityRow.external_id == chat_id
                )
            )
            return None
        await self.session.execute(
            # Two logins at once may both find it missing: the second insert does nothing.
            upsert(self.session, IdentityRow)
            .values(channel=CHANNEL, external_id=chat_id, person_id=person_id, created_at=now)
            .on_conflict_do_update(
                index_elements=["channel", "external_id"], set_={"person_id": person_id}
            )
        )
        return chat_id

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
        """Inactive, and signed out everywhere (the caller syncs the person's desk)."""
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
