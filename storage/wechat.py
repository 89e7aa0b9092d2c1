"""WeChat's SQL: the shared access token, the 48-hour window of each follower, the options a
chat was last offered, and the web chat a follower's case links open. The WeCom app uses the
token, the options and the language too (account `wecom:<corp>:<agent>`, channel "wecom").

Each method is a short transaction of its own (the WeChat channel calls them outside turns).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import delete, desc, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.rows import IdentityRow, OutboxRow, PersonRow, WeChatContactRow, WeChatTokenRow
from storage.sql import upsert
from storage.webchat import CHANNEL as WEB_CHANNEL
from storage.webchat import TOKEN_PREFIX


class WeChatStore:
    """One account's rows (`account` is e.g. "mp:<app_id>"); `channel` names its outbox rows."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], account: str, channel: str
    ) -> None:
        self.sessions = sessions
        self.account = account
        self.channel = channel

    # Access token ----------------------------------------------------------------------------

    async def token(self, valid_at: datetime) -> str | None:
        """The stored token when it is still valid at `valid_at`."""
        async with self.sessions() as session:
            row = await session.get(WeChatTokenRow, self.account)
            if row is None or row.expires_at <= valid_at:
                return None
            return row.token

    async def save_token(self, token: str, expires_at: datetime, now: datetime) -> None:
        async with self.sessions() as session:
            stmt = upsert(session, WeChatTokenRow).values(
                account=self.account, token=token, expires_at=expires_at, refreshed_at=now
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[WeChatTokenRow.account],
                set_={"token": token, "expires_at": expires_at, "refreshed_at": now},
            )
            await session.execute(stmt)
            await session.commit()

    async def forget_token(self, token: str) -> None:
        """WeChat refused this token (40001/42001): nobody uses it again. A newer token another
        process already stored stays."""
        async with self.sessions() as session:
            await session.execute(
                delete(WeChatTokenRow).where(
                    WeChatTokenRow.account == self.account, WeChatTokenRow.token == token
                )
            )
            await session.commit()

    # The 48-hour window ----------------------------------------------------------------------

    async def touch(self, openid: str, at: datetime) -> None:
        """The follower wrote at `at` (never moves the time back)."""
        async with self.sessions() as session:
            stmt = upsert(session, WeChatContactRow).values(
                account=self.account, openid=openid[:64], last_inbound_at=at
            )
            stmt = stmt.on_conflict_do_nothing(
                index_elements=[WeChatContactRow.account, WeChatContactRow.openid]
            )
            await session.execute(stmt)
            await session.execute(
                update(WeChatContactRow)
                .where(
                    WeChatContactRow.account == self.account,
                    WeChatContactRow.openid == openid[:64],
                    WeChatContactRow.last_inbound_at < at,
                )
                .values(last_inbound_at=at)
            )
            await session.commit()

    async def last_inbound(self, openid: str) -> datetime | None:
        async with self.sessions() as session:
            row = await session.get(WeChatContactRow, (self.account, openid))
            return row.last_inbound_at if row is not None else None

    # Options offered -------------------------------------------------------------------------

    async def offered(self, chat_id: str, row_id: int | None = None) -> list[dict[str, Any]]:
        """The buttons of outbox row `row_id` of this chat (a clicked option names it), or of
        the chat's latest message (a typed number picks from what the resident sees last;
        when that message offered nothing, a number is just text), flattened in order."""
        async with self.sessions() as session:
            query = select(OutboxRow.payload).where(
                OutboxRow.channel == self.channel, OutboxRow.chat_id == chat_id
            )
            if row_id is not None:
                query = query.where(OutboxRow.id == row_id)
            else:
                query = query.order_by(desc(OutboxRow.id)).limit(1)
            for (payload,) in (await session.execute(query)).all():
                buttons = [b for line in payload.get("buttons") or [] for b in line]
                if buttons:
                    return buttons
            return []

    # The web chat of a follower --------------------------------------------------------------

    async def language(self, openid: str) -> str | None:
        """The language of the person this follower is (what their messages are written in)."""
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(PersonRow.language)
                    .join(IdentityRow, IdentityRow.person_id == PersonRow.id)
                    .where(IdentityRow.channel == self.channel, IdentityRow.external_id == openid)
                )
            ).scalar_one_or_none()

    async def web_chat_of(self, openid: str, now: datetime, *, create: bool) -> str | None:
        """The web chat (channel "web") of the person this follower is, where their cases'
        template messages link to; created when `create` and the follower is a person."""
        async with self.sessions() as session:
            person_id = (
                await session.execute(
                    select(IdentityRow.person_id).where(
                        IdentityRow.channel == self.channel, IdentityRow.external_id == openid
                    )
                )
            ).scalar_one_or_none()
            if person_id is None:
                return None
            chat = (
                await session.execute(
                    select(IdentityRow.external_id)
                    .where(
                        IdentityRow.channel == WEB_CHANNEL,
                        IdentityRow.person_id == person_id,
                        IdentityRow.external_id.startswith(TOKEN_PREFIX),
                    )
                    .order_by(IdentityRow.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if chat is not None or not create:
                return chat
            # An unguessable address like the ones /r gives: it is the key to the chat.
            chat = TOKEN_PREFIX + secrets.token_urlsafe(18)
            session.add(
                IdentityRow(
                    channel=WEB_CHANNEL, external_id=chat, person_id=person_id, created_at=now
                )
            )
            await session.commit()
            return chat
