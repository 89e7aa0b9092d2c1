"""The web chat's SQL: its history (web_messages), who a chat belongs to, the demo directory."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.grid_boards import GridBoards
from storage.outbox_queue import OutboxRows, is_edit
from storage.rows import (
    AreaRow,
    AttachmentRow,
    DepartmentRow,
    IdentityRow,
    OutboxRow,
    PersonRow,
    RoleAssignmentRow,
    WebMessageRow,
)
from storage.sql import affected, upsert
from storage.wakeups import announce, chat_topic
from workflow.model import HUMAN_ROLES, Role

CHANNEL = "web"
EDIT = "edit"  # web_messages.direction of a row that records an edit of an earlier message
# A person of the org file chats as "p-<code>" (demo only); anyone else as "r-<random token>".
PERSON_PREFIX = "p-"
TOKEN_PREFIX = "r-"
_PERSON_CODE = re.compile(r"[A-Za-z0-9._-]{1,60}")
# Roles one can play in the demo picker; an administrator has nothing to do in a chat.
PICKABLE_ROLES: tuple[Role, ...] = tuple(r for r in HUMAN_ROLES if r is not Role.ADMIN)


def edit_target(row: WebMessageRow) -> int | None:
    """The id of the message an edit row changed."""
    value = str((row.payload or {}).get("edit_message_id") or "")
    return int(value) if value.isdigit() else None


def person_chat_id(code: str) -> str | None:
    """The demo chat of a person with a code; None when the code cannot be part of a URL."""
    return PERSON_PREFIX + code if _PERSON_CODE.fullmatch(code) else None


@dataclass
class DirectoryEntry:
    """One person under one role in the demo picker, with where that role applies."""

    code: str
    chat_id: str
    name: str
    places: list[dict[str, str]] = field(default_factory=list)  # {"zh_CN": .., "en": ..}


@dataclass
class GridChoice:
    code: str
    names: dict[str, dict[str, str]]  # township / village / grid -> {"zh_CN": .., "en": ..}


class WebChatStore:
    """Queries of the web channel on the caller's session; the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # History ---------------------------------------------------------------------------------

    async def history(
        self, chat_id: str, *, after: int = 0, limit: int = 200
    ) -> list[WebMessageRow]:
        """Messages after an id, oldest first, with the edits made since (rows of direction
        "edit", whose payload names the message edited); without `after`, the newest `limit`
        messages as they are now, without edits."""
        query = select(WebMessageRow).where(WebMessageRow.chat_id == chat_id)
        if after:
            rows = await self.session.execute(
                query.where(WebMessageRow.id > after).order_by(WebMessageRow.id).limit(limit)
            )
            return list(rows.scalars())
        rows = await self.session.execute(
            query.where(WebMessageRow.direction != EDIT)
            .order_by(WebMessageRow.id.desc())
            .limit(limit)
        )
        return list(reversed(rows.scalars().all()))

    async def edited(self, chat_id: str, edits: list[WebMessageRow]) -> dict[int, WebMessageRow]:
        """The messages these edit rows changed, as they are now, by id."""
        ids = {edit_target(row) for row in edits if row.direction == EDIT} - {None}
        if not ids:
            return {}
        rows = await self.session.execute(
            select(WebMessageRow).where(
                WebMessageRow.chat_id == chat_id, WebMessageRow.id.in_(sorted(i for i in ids if i))
            )
        )
        return {row.id: row for row in rows.scalars()}

    async def message(self, chat_id: str, message_id: int) -> WebMessageRow | None:
        """A message of this chat only: ids of other chats are not found."""
        row = await self.session.get(WebMessageRow, message_id)
        return row if row is not None and row.chat_id == chat_id else None

    async def add_incoming(
        self, chat_id: str, payload: dict[str, Any], now: datetime
    ) -> WebMessageRow:
        row = WebMessageRow(
            chat_id=chat_id, direction="in", payload=payload, case_number=None, created_at=now
        )
        self.session.add(row)
        await self.session.flush()
        announce(self.session, chat_topic(chat_id))
        return row

    async def add_photo(self, message_id: int, sha256: str) -> None:
        """A photo the user sent, stored: their message shows it (the public copy's hash)."""
        row = await self.session.get(WebMessageRow, message_id)
        if row is not None:
            photos = [*(row.payload.get("photos") or []), sha256]
            row.payload = {**row.payload, "photos": photos}
            await self.session.flush()

    async def exists(self, chat_id: str) -> bool:
        """A chat exists once it has a message or an account; other ids are simply unknown."""
        linked = await self.session.execute(
            select(IdentityRow.id).where(
                IdentityRow.channel == CHANNEL, IdentityRow.external_id == chat_id
            )
        )
        if linked.first() is not None:
            return True
        said = await self.session.execute(
            select(WebMessageRow.id).where(WebMessageRow.chat_id == chat_id).limit(1)
        )
        return said.first() is not None

    async def shown_photo_mime(self, chat_id: str, sha256: str) -> str | None:
        """The MIME type of a photo this chat was sent or sent itself; None for any other."""
        rows = await self.session.execute(
            select(WebMessageRow.payload).where(
                WebMessageRow.chat_id == chat_id,
                cast(WebMessageRow.payload, String).contains(sha256),
            )
        )
        if not any(sha256 in (payload.get("photos") or []) for payload in rows.scalars()):
            return None
        mime = await self.session.execute(
            select(AttachmentRow.mime_type).where(AttachmentRow.public_sha256 == sha256).limit(1)
        )
        return mime.scalar_one_or_none()

    # Delivery --------------------------------------------------------------------------------

    async def pending(self, limit: int) -> list[OutboxRow]:
        return await OutboxRows(self.session, CHANNEL).pending(limit)

    async def deliver(self, row: OutboxRow, now: datetime) -> WebMessageRow | None:
        """Move one outbox row into the chat's history; None when someone else already did."""
        outbox = OutboxRows(self.session, CHANNEL)
        if is_edit(row.payload):
            return await self._edit(outbox, row, now)
        if not await outbox.mark_sent(row.id, row.attempts, now):
            return None
        message = WebMessageRow(
            chat_id=row.chat_id,
            direction="out",
            payload=row.payload,
            case_number=row.case_number,
            created_at=now,
        )
        self.session.add(message)
        await self.session.flush()
        announce(self.session, chat_topic(row.chat_id))
        # Replies to this message (progress notes on a card) find their case through it; a
        # message about a case that is not there still shows, without a link.
        await outbox.link(row, str(message.id), now)
        return message

    async def _edit(
        self, outbox: OutboxRows, row: OutboxRow, now: datetime
    ) -> WebMessageRow | None:
        """Change a message of the chat in place (its text, unless the edit leaves it, and its
        buttons), and note the edit in the history so open pages redraw that message. An edit
        of a message the chat does not have fails alone (the case is not flagged)."""
        target_id = str(row.payload.get("edit_message_id") or "")
        target = await self.message(row.chat_id, int(target_id)) if target_id.isdigit() else None
        if target is None or target.direction != "out":
            await outbox.fail(row.id, row.attempts, row.case_number,
                              f"message to edit not found: {target_id}", now,
                              flag_case=False)  # fmt: skip
            return None
        if not await outbox.mark_sent(row.id, row.attempts, now):
            return None
        payload = dict(target.payload or {})
        payload["buttons"] = row.payload.get("buttons") or []
        if row.payload.get("text"):
            payload["text"] = row.payload["text"]
        target.payload = payload  # a new dict: the JSON column sees the change
        edit = WebMessageRow(
            chat_id=row.chat_id, direction=EDIT, payload={"edit_message_id": target.id},
            case_number=row.case_number, created_at=now,
        )  # fmt: skip
        self.session.add(edit)
        await self.session.flush()
        announce(self.session, chat_topic(row.chat_id))
        return edit

    async def deliver_alone(self, row: OutboxRow, now: datetime) -> WebMessageRow | None:
        """deliver() in a savepoint of its own: a row that cannot be delivered takes back only
        its own changes, and the batch goes on."""
        async with self.session.begin_nested():
            return await self.deliver(row, now)

    async def fail(
        self, row_id: int, attempts: int, case_number: str | None, reason: str, now: datetime
    ) -> None:
        """Failed for good, with the reason operators read on the dashboard; the case is
        flagged, as the Telegram sender does, so a person reaches that party another way."""
        await OutboxRows(self.session, CHANNEL).fail(row_id, attempts, case_number, reason, now)

    # Demo directory --------------------------------------------------------------------------

    async def person_by_code(self, code: str) -> PersonRow | None:
        row = (
            await self.session.execute(
                select(PersonRow).where(PersonRow.code == code, PersonRow.active.is_(True))
            )
        ).scalar_one_or_none()
        return row

    async def link_people(self, now: datetime) -> list[str]:
        """Give every person of the org file a web chat, so their notifications reach it;
        the chats that are new."""
        people = (
            await self.session.execute(
                select(PersonRow.id, PersonRow.code).where(
                    PersonRow.code.is_not(None), PersonRow.active.is_(True)
                )
            )
        ).all()
        linked = set(
            (
                await self.session.execute(
                    select(IdentityRow.external_id).where(
                        IdentityRow.channel == CHANNEL,
                        IdentityRow.external_id.startswith(PERSON_PREFIX),
                    )
                )
            ).scalars()
        )
        added: list[str] = []
        for person_id, code in people:
            chat_id = person_chat_id(code) if code is not None else None
            if chat_id is None or chat_id in linked:
                continue
            stmt = (
                # Two demo tabs may link at once: the second link does nothing.
                upsert(self.session, IdentityRow)
                .values(channel=CHANNEL, external_id=chat_id, person_id=person_id, created_at=now)
                .on_conflict_do_nothing()
            )
            if affected(await self.session.execute(stmt)):
                added.append(chat_id)
        return added

    async def directory(self) -> dict[Role, list[DirectoryEntry]]:
        """People of the org file by role, each with the grids, townships or department served."""
        rows = (
            await self.session.execute(
                select(
                    PersonRow.code,
                    PersonRow.name,
                    RoleAssignmentRow.role,
                    AreaRow.name_zh,
                    AreaRow.name_en,
                    DepartmentRow.name_zh,
                    DepartmentRow.name_en,
                )
                .join(RoleAssignmentRow, RoleAssignmentRow.person_id == PersonRow.id)
                .outerjoin(AreaRow, AreaRow.id == RoleAssignmentRow.area_id)
                .outerjoin(DepartmentRow, DepartmentRow.id == RoleAssignmentRow.department_id)
                .where(PersonRow.code.is_not(None), PersonRow.active.is_(True))
                .order_by(PersonRow.code, AreaRow.code)
            )
        ).all()
        entries: dict[tuple[Role, str], DirectoryEntry] = {}
        for code, name, role_name, area_zh, area_en, dept_zh, dept_en in rows:
            role = Role(role_name)
            chat_id = person_chat_id(code) if code is not None else None
            if role not in PICKABLE_ROLES or code is None or chat_id is None:
                continue
            entry = entries.setdefault((role, code), DirectoryEntry(code, chat_id, name))
            if area_zh is not None:
                entry.places.append({"zh_CN": area_zh, "en": area_en})
            if dept_zh is not None:
                entry.places.append({"zh_CN": dept_zh, "en": dept_en})
        grouped: dict[Role, list[DirectoryEntry]] = defaultdict(list)
        for (role, _code), entry in entries.items():
            grouped[role].append(entry)
        return {role: grouped[role] for role in PICKABLE_ROLES if grouped.get(role)}

    async def grids(self) -> list[GridChoice]:
        """Every active grid with its village and township, for "a new resident of a grid"."""
        boards = await GridBoards(self.session).boards()
        return [
            GridChoice(
                code=b.code,
                names={
                    "township": {"zh_CN": b.township_zh, "en": b.township_en},
                    "village": {"zh_CN": b.village_zh, "en": b.village_en},
                    "grid": {"zh_CN": b.name_zh, "en": b.name_en},
                },
            )
            for b in sorted(boards, key=lambda b: b.code)
        ]

    async def person_name(self, chat_id: str) -> tuple[str, list[str]] | None:
        """Who a chat belongs to (name and roles), for the chat's header."""
        row = (
            await self.session.execute(
                select(PersonRow.id, PersonRow.name)
                .join(IdentityRow, IdentityRow.person_id == PersonRow.id)
                .where(IdentityRow.channel == CHANNEL, IdentityRow.external_id == chat_id)
            )
        ).first()
        if row is None:
            return None
        roles = (
            await self.session.execute(
                select(RoleAssignmentRow.role)
                .where(RoleAssignmentRow.person_id == row[0])
                .distinct()
            )
        ).scalars()
        order = {role.value: i for i, role in enumerate(HUMAN_ROLES)}
        return row[1], sorted(roles, key=lambda r: order.get(r, 99))
