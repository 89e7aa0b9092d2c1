"""Channel store: chat accounts, group bindings, invites, conversations and message links in SQL."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.case_cards import CaseCards
from storage.rows import (
    AreaRow,
    CaseRow,
    ChatBindingRow,
    ConversationRow,
    IdentityRow,
    InviteRow,
    MessageLinkRow,
    PersonRow,
    ProcessedUpdateRow,
    RoleAssignmentRow,
)
from storage.sql import affected
from workflow.channels import ChatBinding, Conversation, InviteUse, Person, Place, RoleGrant
from workflow.errors import ConcurrentUpdate, GuardFailed, NotFound
from workflow.model import HUMAN_ROLES, Role

# places("township") lists townships and streets; places("village") villages and communities.
_KIND_GROUPS = {
    "township": ("township", "street"),
    "street": ("township", "street"),
    "village": ("village", "community"),
    "community": ("village", "community"),
}
_ROLE_ORDER = {role: i for i, role in enumerate(HUMAN_ROLES)}


def _place(row: AreaRow) -> Place:
    return Place(
        id=row.id,
        code=row.code,
        kind=row.kind,
        name_zh=row.name_zh,
        name_en=row.name_en,
        parent_id=row.parent_id,
    )


def _binding(row: ChatBindingRow) -> ChatBinding:
    return ChatBinding(
        channel=row.channel,
        chat_id=row.chat_id,
        purpose=row.purpose,
        area_id=row.area_id,
        department_id=row.department_id,
    )


def _same(column: Any, value: int | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


NEAREST_GRID_KM = 3.0


def processed_key(key: str) -> str:
    """What a processed-update mark stores: a fixed-length digest of the channel's key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance; plenty for choosing among grids a few hundred metres apart."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


class SqlChannelStore(CaseCards):
    """The ChannelStore port on the caller's session; writes join the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self, table: Any) -> Any:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

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

    async def save_conversation(self, conversation: Conversation, now: datetime) -> None:
        """Insert, or update the version that was read; an idle conversation is deleted."""
        c = conversation
        key = (
            ConversationRow.channel == c.channel,
            ConversationRow.chat_id == c.chat_id,
            ConversationRow.user_id == c.user_id,
        )
        if c.idle:
            if c.version:
                result = await self.session.execute(
                    delete(ConversationRow).where(*key, ConversationRow.version == c.version)
                )
                if affected(result) != 1 and await self._conversation_exists(c):
                    raise self._stale(c)
            c.version = 0
            return
        if c.version == 0:
            stmt = (
                self._insert(ConversationRow)
                .values(
                    channel=c.channel,
                    chat_id=c.chat_id,
                    user_id=c.user_id,
                    step=c.step,
                    draft=c.draft,
                    version=1,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
            result = await self.session.execute(stmt)
        else:
            result = await self.session.execute(
                update(ConversationRow)
                .where(*key, ConversationRow.version == c.version)
                .values(step=c.step, draft=c.draft, version=c.version + 1, updated_at=now)
            )
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

    # People ----------------------------------------------------------------------------------

    async def person_for(self, channel: str, external_id: str) -> Person | None:
        """The active person this chat account is linked to, with their roles."""
        person = await self._linked_person(channel, external_id)
        if person is None or not person.active:
            return None
        return await self._person(person)

    async def _linked_person(self, channel: str, external_id: str) -> PersonRow | None:
        return (
            await self.session.execute(
                select(PersonRow)
                .join(IdentityRow, IdentityRow.person_id == PersonRow.id)
                .where(IdentityRow.channel == channel, IdentityRow.external_id == external_id)
            )
        ).scalar_one_or_none()

    async def _person(self, person: PersonRow) -> Person:
        rows = (
            await self.session.execute(
                select(
                    RoleAssignmentRow.role,
                    RoleAssignmentRow.area_id,
                    RoleAssignmentRow.department_id,
                ).where(RoleAssignmentRow.person_id == person.id)
            )
        ).all()
        scopes: dict[Role, tuple[set[int], set[int]]] = {}
        for role_name, area_id, department_id in rows:
            areas, departments = scopes.setdefault(Role(role_name), (set(), set()))
            if area_id is not None:
                areas.add(area_id)
            if department_id is not None:
                departments.add(department_id)
        grants = tuple(
            RoleGrant(role, frozenset(scopes[role][0]), frozenset(scopes[role][1]))
            for role in sorted(scopes, key=_ROLE_ORDER.__getitem__)
        )
        return Person(id=person.id, name=person.name, language=person.language, roles=grants)

    async def _new_person(self, name: str, language: str, now: datetime) -> PersonRow:
        person = PersonRow(
            code=None, name=name or "-", phone=None, language=language, active=True, created_at=now
        )
        self.session.add(person)
        await self.session.flush()
        return person

    async def _link(self, channel: str, external_id: str, person_id: int, now: datetime) -> None:
        """Point the chat account at the person, moving it when it pointed at someone else."""
        moved = await self.session.execute(
            update(IdentityRow)
            .where(IdentityRow.channel == channel, IdentityRow.external_id == external_id)
            .values(person_id=person_id)
        )
        if affected(moved) == 0:
            await self.session.execute(
                insert(IdentityRow).values(
                    channel=channel, external_id=external_id, person_id=person_id, created_at=now
                )
            )

    async def _grant(
        self, person_id: int, role: str, area_id: int | None, department_id: int | None
    ) -> None:
        exists = await self.session.execute(
            select(RoleAssignmentRow.id).where(
                RoleAssignmentRow.person_id == person_id,
                RoleAssignmentRow.role == role,
                _same(RoleAssignmentRow.area_id, area_id),
                _same(RoleAssignmentRow.department_id, department_id),
            )
        )
        if exists.first() is None:
            await self.session.execute(
                insert(RoleAssignmentRow).values(
                    person_id=person_id, role=role, area_id=area_id, department_id=department_id
                )
            )

    async def enrol_resident(
        self, channel: str, external_id: str, name: str, language: str, grid_id: int,
        now: datetime,
    ) -> Person:  # fmt: skip
        """The chat account's person becomes a resident of exactly this grid (residents move)."""
        grid = await self.session.get(AreaRow, grid_id)
        if grid is None or grid.kind != "grid" or not grid.active:
            raise NotFound("unknown_grid", f"no active grid with id {grid_id}", grid=grid_id)
        person = await self._linked_person(channel, external_id)
        if person is None or not person.active:
            # A person the org file removed stays removed; the account starts afresh.
            person = await self._new_person(name, language, now)
            await self._link(channel, external_id, person.id, now)
        await self.session.execute(
            delete(RoleAssignmentRow).where(
                RoleAssignmentRow.person_id == person.id,
                RoleAssignmentRow.role == Role.RESIDENT.value,
                RoleAssignmentRow.area_id.is_(None) | (RoleAssignmentRow.area_id != grid_id),
            )
        )
        await self._grant(person.id, Role.RESIDENT.value, grid_id, None)
        return await self._person(person)

    async def identities_of(self, person_id: int) -> list[tuple[str, str]]:
        rows = await self.session.execute(
            select(IdentityRow.channel, IdentityRow.external_id)
            .where(IdentityRow.person_id == person_id)
            .order_by(IdentityRow.id)
        )
        return [(channel, external_id) for channel, external_id in rows.all()]

    # Invites ---------------------------------------------------------------------------------

    async def redeem_invite(
        self,
        code: str,
        channel: str,
        external_id: str,
        name: str,
        chat_id: str,
        now: datetime,
        *,
        purpose: str | None = None,
    ) -> InviteUse:
        """Use a one-time code: enrol this chat account, or bind this chat to a unit. With a
        `purpose` (enrol, bind_chat) a code made for the other one is refused, and stays unused."""
        wanted = code.strip().upper()
        invite = await self.session.get(InviteRow, wanted, populate_existing=True)
        if invite is None:
            raise NotFound("unknown_invite", f"no invite with code {wanted}", invite=wanted)
        if purpose is not None and invite.purpose != purpose:
            raise GuardFailed(
                "invite_wrong_use",
                f"invite {wanted} is for {invite.purpose}, not {purpose}",
                invite=wanted,
                purpose=invite.purpose,
            )
        if invite.used_at is not None:
            raise GuardFailed("invite_used", f"invite {wanted} was already used", invite=wanted)
        if invite.expires_at <= now:
            raise GuardFailed(
                "invite_expired",
                f"invite {wanted} expired at {invite.expires_at.isoformat()}",
                invite=wanted,
                expired_at=invite.expires_at,
            )
        target: PersonRow | None = None
        if invite.person_id is not None:
            target = await self.session.get(PersonRow, invite.person_id)
            if target is None or not target.active:
                raise NotFound("unknown_person", f"the invited person {invite.person_id} is gone")
        # Single use even when two accounts redeem at the same moment: only one update wins.
        claimed = await self.session.execute(
            update(InviteRow)
            .where(InviteRow.code == invite.code, InviteRow.used_at.is_(None))
            .values(used_at=now, used_by=f"{channel}:{external_id}")
        )
        if affected(claimed) != 1:
            raise GuardFailed("invite_used", f"invite {wanted} was already used", invite=wanted)

        if invite.purpose == "bind_chat":
            await self._bind(channel, chat_id, invite, now)
            return InviteUse(
                purpose="bind_chat", area_id=invite.area_id, department_id=invite.department_id
            )

        role = Role(invite.role) if invite.role else None
        if target is None:
            if role is None:
                raise ValueError(f"invite {wanted} enrols no role and no person")
            # A chat account already linked (say, a resident) keeps its person and gains the role.
            linked = await self._linked_person(channel, external_id)
            target = (
                linked
                if linked is not None and linked.active
                else await self._new_person(name, "zh_CN", now)
            )
            await self._grant(target.id, role.value, invite.area_id, invite.department_id)
        await self._link(channel, external_id, target.id, now)
        if role is None:
            person = await self._person(target)
            role = next((g.role for g in person.roles if g.role is not Role.RESIDENT), None)
            role = role or (person.roles[0].role if person.roles else None)
        return InviteUse(
            purpose="enrol",
            role=role,
            area_id=invite.area_id,
            department_id=invite.department_id,
            person_id=target.id,
        )

    async def _bind(self, channel: str, chat_id: str, invite: InviteRow, now: datetime) -> None:
        purpose = invite.chat_purpose or ""
        exists = await self.session.execute(
            select(ChatBindingRow.id).where(
                ChatBindingRow.channel == channel,
                ChatBindingRow.chat_id == chat_id,
                ChatBindingRow.purpose == purpose,
                _same(ChatBindingRow.area_id, invite.area_id),
                _same(ChatBindingRow.department_id, invite.department_id),
            )
        )
        if exists.first() is None:
            await self.session.execute(
                insert(ChatBindingRow).values(
                    channel=channel,
                    chat_id=chat_id,
                    purpose=purpose,
                    area_id=invite.area_id,
                    department_id=invite.department_id,
                    created_at=now,
                )
            )

    # Group chats -----------------------------------------------------------------------------

    async def bindings_of_chat(self, channel: str, chat_id: str) -> list[ChatBinding]:
        rows = await self.session.execute(
            select(ChatBindingRow)
            .where(ChatBindingRow.channel == channel, ChatBindingRow.chat_id == chat_id)
            .order_by(ChatBindingRow.id)
        )
        return [_binding(row) for row in rows.scalars()]

    async def chats_for(
        self, purpose: str, *, area_id: int | None = None, department_id: int | None = None
    ) -> list[ChatBinding]:
        """Chats bound for a purpose: grid (area_id: a grid), township (area_id: a township),
        department (department_id), county / supervisors / leaders (no ids)."""
        query = select(ChatBindingRow).where(ChatBindingRow.purpose == purpose)
        if area_id is not None:
            query = query.where(ChatBindingRow.area_id == area_id)
        if department_id is not None:
            query = query.where(ChatBindingRow.department_id == department_id)
        rows = await self.session.execute(query.order_by(ChatBindingRow.id))
        return [_binding(row) for row in rows.scalars()]

    # Messages and updates --------------------------------------------------------------------

    async def link_message(
        self, channel: str, chat_id: str, message_id: str, case: int | str, purpose: str,
        now: datetime,
    ) -> None:  # fmt: skip
        """Remember that a sent message is about a case (given by id or by number)."""
        if isinstance(case, str):
            case_id = (
                await self.session.execute(select(CaseRow.id).where(CaseRow.number == case))
            ).scalar_one_or_none()
            if case_id is None:
                raise NotFound("unknown_case", f"no case numbered {case}", case=case)
        else:
            case_id = case
        stmt = self._insert(MessageLinkRow).values(
            channel=channel,
            chat_id=chat_id,
            message_id=message_id,
            case_id=case_id,
            purpose=purpose,
            created_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                MessageLinkRow.channel,
                MessageLinkRow.chat_id,
                MessageLinkRow.message_id,
            ],
            set_={"case_id": case_id, "purpose": purpose, "created_at": now},
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

    async def mark_processed(self, channel: str, key: str, now: datetime) -> bool:
        """True the first time an update is seen; False for a redelivery (even a concurrent one)."""
        stmt = (
            self._insert(ProcessedUpdateRow)
            .values(channel=channel, key=processed_key(key), at=now)
            .on_conflict_do_nothing(
                index_elements=[ProcessedUpdateRow.channel, ProcessedUpdateRow.key]
            )
        )
        result = await self.session.execute(stmt)
        return affected(result) == 1

    # Places ----------------------------------------------------------------------------------

    async def places(self, kind: str, parent_id: int | None = None) -> list[Place]:
        """Active areas of a kind (township also lists streets, village communities), by code."""
        query = select(AreaRow).where(
            AreaRow.kind.in_(_KIND_GROUPS.get(kind, (kind,))), AreaRow.active.is_(True)
        )
        if parent_id is not None:
            query = query.where(AreaRow.parent_id == parent_id)
        rows = await self.session.execute(query.order_by(AreaRow.code))
        return [_place(row) for row in rows.scalars()]

    async def place(self, place_id: int) -> Place | None:
        """An active area by id; None when unknown or no longer in the org file."""
        row = await self.session.get(AreaRow, place_id)
        return _place(row) if row is not None and row.active else None

    async def nearest_grid(
        self, latitude: float, longitude: float, max_km: float = NEAREST_GRID_KM
    ) -> Place | None:
        """The active grid whose point is closest to a shared location, if close enough."""
        rows = await self.session.execute(
            select(AreaRow).where(
                AreaRow.kind == "grid", AreaRow.active.is_(True), AreaRow.latitude.is_not(None)
            )
        )
        best = min(
            (
                (_km(latitude, longitude, r.latitude, r.longitude), r)
                for r in rows.scalars()
                if r.latitude is not None and r.longitude is not None
            ),
            key=lambda pair: pair[0],
            default=None,
        )
        if best is None or best[0] > max_km:
            return None
        return _place(best[1])

    async def place_by_code(self, code: str) -> Place | None:
        """An active area by its code (as on a QR code: exact match)."""
        row = (
            await self.session.execute(
                select(AreaRow).where(AreaRow.code == code.strip(), AreaRow.active.is_(True))
            )
        ).scalar_one_or_none()
        return _place(row) if row is not None else None
