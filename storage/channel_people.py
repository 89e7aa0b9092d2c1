"""Who is behind a chat: people and their chat identities, role grants, invites, group bindings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import (
    ChatBindingRow,
    IdentityRow,
    InviteRow,
    PersonRow,
    RoleAssignmentRow,
)
from storage.sql import affected, table_of
from workflow.channels import ChatBinding, InviteUse, Person, Place, RoleGrant
from workflow.errors import GuardFailed, NotFound
from workflow.model import HUMAN_ROLES, Role

_ROLE_ORDER = {role: i for i, role in enumerate(HUMAN_ROLES)}

# Built once: a first /start runs these (Core tables where no ORM object is needed).
_IDENTITIES = table_of(IdentityRow)
_LINKED_PERSON = (
    select(PersonRow)
    .join(IdentityRow, IdentityRow.person_id == PersonRow.id)
    .where(IdentityRow.channel == bindparam("channel"))
    .where(IdentityRow.external_id == bindparam("external_id"))
)
_MOVE_IDENTITY = (
    update(_IDENTITIES)
    .where(_IDENTITIES.c.channel == bindparam("k_channel"))
    .where(_IDENTITIES.c.external_id == bindparam("k_external_id"))
)
_INSERT_IDENTITY = insert(_IDENTITIES)
_INSERT_PERSON = insert(table_of(PersonRow)).returning(table_of(PersonRow).c.id)
_INSERT_GRANT = insert(table_of(RoleAssignmentRow))


def _chats_for_statement(by_area: bool, by_department: bool) -> Any:
    query = select(ChatBindingRow).where(ChatBindingRow.purpose == bindparam("purpose"))
    if by_area:
        query = query.where(ChatBindingRow.area_id == bindparam("area_id"))
    if by_department:
        query = query.where(ChatBindingRow.department_id == bindparam("department_id"))
    return query.order_by(ChatBindingRow.id)


_CHATS_FOR = {(a, d): _chats_for_statement(a, d) for a in (False, True) for d in (False, True)}


def _binding(row: ChatBindingRow) -> ChatBinding:
    return ChatBinding(
        channel=row.channel,
        chat_id=row.chat_id,
        purpose=row.purpose,
        area_id=row.area_id,
        department_id=row.department_id,
    )


def grants(rows: list[tuple[Any, ...]]) -> tuple[RoleGrant, ...]:
    """(role, area id, department id) rows -> one grant per role, highest role first."""
    scopes: dict[Role, tuple[set[int], set[int]]] = {}
    for role_name, area_id, department_id in rows:
        areas, departments = scopes.setdefault(Role(role_name), (set(), set()))
        if area_id is not None:
            areas.add(area_id)
        if department_id is not None:
            departments.add(department_id)
    return tuple(
        RoleGrant(role, frozenset(scopes[role][0]), frozenset(scopes[role][1]))
        for role in sorted(scopes, key=_ROLE_ORDER.__getitem__)
    )


def _same(column: Any, value: int | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


class ChannelPeople:
    """People, invites and group chats of the ChannelStore port; mixed into SqlChannelStore."""

    session: AsyncSession

    # People ----------------------------------------------------------------------------------

    async def person_for(self, channel: str, external_id: str) -> Person | None:
        """The active person this chat account is linked to, with their roles.

        Every update asks this first, so it is one statement: the person's columns joined to
        one row per role grant (or one row with no role)."""
        rows = (
            await self.session.execute(
                select(
                    PersonRow.id,
                    PersonRow.name,
                    PersonRow.language,
                    RoleAssignmentRow.role,
                    RoleAssignmentRow.area_id,
                    RoleAssignmentRow.department_id,
                )
                .select_from(IdentityRow)
                .join(PersonRow, IdentityRow.person_id == PersonRow.id)
                .outerjoin(RoleAssignmentRow, RoleAssignmentRow.person_id == PersonRow.id)
                .where(
                    IdentityRow.channel == channel,
                    IdentityRow.external_id == external_id,
                    PersonRow.active.is_(True),
                )
            )
        ).all()
        if not rows:
            return None
        person_id, name, language = rows[0][:3]
        held = [(role, area, dept) for *_, role, area, dept in rows if role is not None]
        return Person(id=person_id, name=name, language=language, roles=grants(held))

    async def _linked_person(self, channel: str, external_id: str) -> PersonRow | None:
        return (
            await self.session.execute(
                _LINKED_PERSON, {"channel": channel, "external_id": external_id}
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
        return Person(
            id=person.id,
            name=person.name,
            language=person.language,
            roles=grants([tuple(row) for row in rows]),
        )

    async def _new_person(self, name: str, language: str, now: datetime) -> PersonRow:
        """One INSERT (no ORM flush); the row returned is a detached copy to read from."""
        values = {
            "code": None, "name": name or "-", "phone": None, "language": language,
            "active": True, "created_at": now,
        }  # fmt: skip
        person_id = (await self.session.execute(_INSERT_PERSON, values)).scalar_one()
        return PersonRow(id=person_id, **values)

    async def _link(
        self, channel: str, external_id: str, person_id: int, now: datetime, *,
        new: bool = False,
    ) -> None:  # fmt: skip
        """Point the chat account at the person, moving it when it pointed at someone else
        (new: the account is linked to no one yet, so there is nothing to move)."""
        if not new:
            moved = await self.session.execute(
                _MOVE_IDENTITY,
                {"k_channel": channel, "k_external_id": external_id, "person_id": person_id},
            )
            if affected(moved) != 0:
                return
        await self.session.execute(
            _INSERT_IDENTITY,
            {
                "channel": channel, "external_id": external_id, "person_id": person_id,
                "created_at": now,
            },
        )  # fmt: skip

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
        # Active only, from the process's copy of the org (ChannelPlaces, mixed in beside us).
        places: Any = self
        grid: Place | None = await places.place(grid_id)
        if grid is None or grid.kind != "grid":
            raise NotFound("unknown_grid", f"no active grid with id {grid_id}", grid=grid_id)
        person = await self._linked_person(channel, external_id)
        if person is None or not person.active:
            # A person the org file removed stays removed; the account starts afresh.
            account_is_new = person is None
            person = await self._new_person(name, language, now)
            await self._link(channel, external_id, person.id, now, new=account_is_new)
            # A new person holds nothing yet: nothing to take back, check or read back.
            role = Role.RESIDENT.value
            await self.session.execute(
                _INSERT_GRANT,
                {"person_id": person.id, "role": role, "area_id": grid_id, "department_id": None},
            )
            return Person(
                id=person.id, name=person.name, language=person.language,
                roles=grants([(role, grid_id, None)]),
            )  # fmt: skip
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
        query = _CHATS_FOR[area_id is not None, department_id is not None]
        params = {"purpose": purpose, "area_id": area_id, "department_id": department_id}
        rows = await self.session.execute(query, params)
        return [_binding(row) for row in rows.scalars()]
