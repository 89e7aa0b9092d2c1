"""Channel store: conversations, message links and processed-update marks in SQL.

People, invites and group bindings are in channel_people.py, places in channel_places.py;
SqlChannelStore mixes them (and the case cards) into the one ChannelStore port.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.case_cards import CaseCards
from storage.case_memo import remember_grants
from storage.channel_people import ChannelPeople, grants
from storage.channel_places import ChannelPlaces
from storage.chat_locks import lock_chat, locked_params
from storage.org_cache import OrgCache, seen
from storage.outbox import flush_outbox
from storage.rows import (
    CaseRow,
    ConversationRow,
    IdentityRow,
    MessageLinkRow,
    OutboxRow,
    PersonRow,
)
from storage.sql import affected, dialect_of, upsert
from storage.turn_statements import (
    CONVERSATION_DELETE,
    CONVERSATION_INSERT,
    CONVERSATION_UPDATE,
    LOCKED_MARK,
    PROCESSED_MARK,
    TURN_STATE,
)
from workflow.channels import Conversation, Person, ShownMessage
from workflow.errors import ConcurrentUpdate, NotFound


def processed_key(key: str) -> str:
    """What a processed-update mark stores: a fixed-length digest of the channel's key."""
    return hashlib.sha256(key.encode()).hexdigest()


class SqlChannelStore(ChannelPeople, ChannelPlaces, CaseCards):
    """The ChannelStore port on the caller's session; writes join the caller's transaction."""

    def __init__(self, session: AsyncSession, org_cache: OrgCache | None = None) -> None:
        self.session = session
        self.org_cache = org_cache  # places by code, as this process read them

    # Conversations ---------------------------------------------------------------------------

    async def conversation(self, channel: str, chat_id: str, user_id: str) -> Conversation:
        row = await self.session.get(
            ConversationRow, (channel, chat_id, user_id), populate_existing=True
        )
        if row is None:
            return Conversation(channel=channel, chat_id=chat_id, user_id=user_id)
        return Conversation(
            channel=channel,
            chat_id=chat_id,
            user_id=user_id,
            step=row.step,
            draft=dict(row.draft or {}),
            version=row.version,
        )

    async def turn_state(
        self, channel: str, chat_id: str, user_id: str
    ) -> tuple[Person | None, Conversation]:
        """The person behind the account (as person_for) and the conversation (as
        conversation), read in one statement: the fixed cost every update pays."""
        rows = (
            await self.session.execute(
                TURN_STATE, {"channel": channel, "chat_id": chat_id, "user_id": user_id}
            )
        ).all()
        step, draft, version, person_id, name, language = rows[0][:6]
        seen(self.session, rows[0][10])  # the organisation's generation, for its cached copy
        conv = Conversation(channel=channel, chat_id=chat_id, user_id=user_id)
        if version is not None:
            conv.step, conv.draft, conv.version = step, dict(draft or {}), version
        if person_id is None:
            return None, conv
        held = [tuple(r[6:10]) for r in rows if r[6] is not None]
        remember_grants(self.session, person_id, held)  # the actor of this turn's commands
        roles = grants([g[:3] for g in held])
        return Person(id=person_id, name=name, language=language, roles=roles), conv

    async def save_conversation(self, conversation: Conversation, now: datetime) -> None:
        """Insert, or update the version that was read; an idle conversation is deleted."""
        c = conversation
        key = {"k_channel": c.channel, "k_chat_id": c.chat_id, "k_user_id": c.user_id}
        if c.idle:
            if c.version:
                result = await self.session.execute(
                    CONVERSATION_DELETE, {**key, "k_version": c.version}
                )
                if affected(result) != 1 and await self._conversation_exists(c):
                    raise self._stale(c)
            c.version = 0
            return
        if c.version == 0:
            result = await self.session.execute(
                CONVERSATION_INSERT[dialect_of(self.session)],
                {
                    "channel": c.channel, "chat_id": c.chat_id, "user_id": c.user_id,
                    "step": c.step, "draft": c.draft, "version": 1, "updated_at": now,
                },
            )  # fmt: skip
        else:
            result = await self.session.execute(
                CONVERSATION_UPDATE,
                {
                    **key, "k_version": c.version, "step": c.step, "draft": c.draft,
                    "version": c.version + 1, "updated_at": now,
                },
            )  # fmt: skip
        if affected(result) != 1:
            raise self._stale(c)
        c.version += 1

    async def _conversation_exists(self, c: Conversation) -> bool:
        found = await self.session.execute(
            select(ConversationRow.version).where(
                ConversationRow.channel == c.channel,
                ConversationRow.chat_id == c.chat_id,
                ConversationRow.user_id == c.user_id,
            )
        )
        return found.first() is not None

    @staticmethod
    def _stale(c: Conversation) -> ConcurrentUpdate:
        return ConcurrentUpdate(
            "conversation_changed",
            f"conversation {c.channel}:{c.chat_id}:{c.user_id} was saved by another update",
        )

    # Messages and updates --------------------------------------------------------------------

    async def link_message(
        self, channel: str, chat_id: str, message_id: str, case: int | str, purpose: str,
        now: datetime, *, caption: bool = False, context: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Remember that a sent message is about a case (given by id or by number), with what
        an edit of it needs (`context`: Outgoing.context)."""
        if isinstance(case, str):
            case_id = (
                await self.session.execute(select(CaseRow.id).where(CaseRow.number == case))
            ).scalar_one_or_none()
            if case_id is None:
                raise NotFound("unknown_case", f"no case numbered {case}", case=case)
        else:
            case_id = case
        stmt = upsert(self.session, MessageLinkRow).values(
            channel=channel,
            chat_id=chat_id,
            message_id=message_id,
            case_id=case_id,
            purpose=purpose,
            created_at=now,
            caption=caption,
            context=context,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                MessageLinkRow.channel,
                MessageLinkRow.chat_id,
                MessageLinkRow.message_id,
            ],
            set_={
                "case_id": case_id,
                "purpose": purpose,
                "created_at": now,
                "caption": caption,
                "context": context,
            },
        )
        await self.session.execute(stmt)

    async def case_for_message(
        self, channel: str, chat_id: str, message_id: str
    ) -> tuple[str, str] | None:
        """(case number, purpose) of a message the bot sent, or None."""
        row = (
            await self.session.execute(
                select(CaseRow.number, MessageLinkRow.purpose)
                .join(CaseRow, CaseRow.id == MessageLinkRow.case_id)
                .where(
                    MessageLinkRow.channel == channel,
                    MessageLinkRow.chat_id == chat_id,
                    MessageLinkRow.message_id == message_id,
                )
            )
        ).first()
        return (row[0], row[1]) if row is not None else None

    async def messages_showing(
        self, number: str, purposes: frozenset[str], limit: int
    ) -> list[ShownMessage]:
        """The newest `limit` messages sent about a case for these purposes, oldest first, then
        those still waiting in the outbox (not edits: they are rewritten before they go out)."""

        # A private chat's id is its person's id on the channel: the card is edited in that
        # person's language. A group chat has no person (None: the default locale).
        def language_of(channel: Any, chat_id: Any) -> Any:
            return (
                select(PersonRow.language)
                .join(IdentityRow, IdentityRow.person_id == PersonRow.id)
                .where(IdentityRow.channel == channel, IdentityRow.external_id == chat_id)
                .scalar_subquery()
            )

        rows = await self.session.execute(
            select(
                MessageLinkRow.channel, MessageLinkRow.chat_id, MessageLinkRow.message_id,
                MessageLinkRow.purpose, MessageLinkRow.caption,
                language_of(MessageLinkRow.channel, MessageLinkRow.chat_id),
                MessageLinkRow.context,
            )
            .join(CaseRow, CaseRow.id == MessageLinkRow.case_id)
            .where(CaseRow.number == number, MessageLinkRow.purpose.in_(sorted(purposes)))
            .order_by(MessageLinkRow.created_at.desc())
            .limit(limit)
        )  # fmt: skip
        sent = [
            ShownMessage(channel, chat_id, message_id, purpose, caption, locale, context=context)
            for channel, chat_id, message_id, purpose, caption, locale, context in reversed(
                rows.all()
            )
        ]
        await flush_outbox(self.session)  # a card this transaction queued is waiting too
        waiting = await self.session.execute(
            select(
                OutboxRow.id, OutboxRow.channel, OutboxRow.chat_id,
                OutboxRow.payload["purpose"].as_string(),
                language_of(OutboxRow.channel, OutboxRow.chat_id),
                OutboxRow.payload["context"],
            )
            .where(
                OutboxRow.status == "pending",
                OutboxRow.case_number == number,
                OutboxRow.payload["purpose"].as_string().in_(sorted(purposes)),
                OutboxRow.payload["edit_message_id"].as_string().is_(None),
            )
            .order_by(OutboxRow.id)
        )  # fmt: skip
        return sent + [
            ShownMessage(
                channel,
                chat_id,
                "",
                purpose,
                locale=locale,
                pending_row=row_id,
                context=context or None,
            )
            for row_id, channel, chat_id, purpose, locale, context in waiting.all()
        ]

    async def lock_chat(self, channel: str, chat_id: str) -> None:
        """This chat's turns one at a time across processes, until this transaction ends
        (storage/chat_locks.py; nothing to do on SQLite)."""
        await lock_chat(self.session, channel, chat_id)

    async def begin_turn(
        self, channel: str, chat_id: str, update_key: str | None, now: datetime
    ) -> bool:
        """A turn's first statement: this chat's turns one at a time until this transaction
        ends, and the update marked processed (when it has a key). False for a redelivery.
        On PostgreSQL the lock is part of the mark's INSERT (storage/chat_locks.py says why
        that is sound), so an update pays one statement for both."""
        if update_key is None:
            await self.lock_chat(channel, chat_id)
            return True
        if dialect_of(self.session) != "postgresql":
            return await self.mark_processed(channel, update_key, now)
        result = await self.session.execute(
            LOCKED_MARK,
            {"channel": channel, "key": processed_key(update_key), "at": now}
            | locked_params(channel, chat_id),
        )
        return affected(result) == 1

    async def mark_processed(self, channel: str, key: str, now: datetime) -> bool:
        """True the first time an update is seen; False for a redelivery (even a concurrent one)."""
        result = await self.session.execute(
            PROCESSED_MARK[dialect_of(self.session)],
            {"channel": channel, "key": processed_key(key), "at": now},
        )
        return affected(result) == 1
