"""What conversations need from storage, beyond the workflow's ports: chats, people, drafts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from workflow.model import Role

# Every channel shuoshi speaks. A deployment delivers only those it is configured for (bot/app.py
# decides; the web chat always), and messages are addressed to those alone: an outbox row for a
# channel no sender takes would wait forever. Tests and benches that say nothing get them all.
ALL_CHANNELS = frozenset({"telegram", "wechat", "wecom", "web"})


@dataclass
class Conversation:
    """Where one user stands in one chat: the step and the draft so far. Survives restarts."""

    channel: str
    chat_id: str
    user_id: str
    step: str = ""
    draft: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # 0: not stored yet

    @property
    def idle(self) -> bool:
        return not self.step


@dataclass(frozen=True)
class RoleGrant:
    role: Role
    area_ids: frozenset[int] = frozenset()
    department_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    language: str
    roles: tuple[RoleGrant, ...] = ()

    def has(self, role: Role) -> bool:
        return any(g.role is role for g in self.roles)

    def grant(self, role: Role) -> RoleGrant | None:
        return next((g for g in self.roles if g.role is role), None)


@dataclass(frozen=True)
class ChatBinding:
    """A group chat serving a unit: grid group(s), a township, a department, the county..."""

    channel: str
    chat_id: str
    purpose: str  # grid | township | county | department | supervisors | leaders
    area_id: int | None = None
    department_id: int | None = None


@dataclass(frozen=True)
class Place:
    id: int
    code: str
    kind: str
    name_zh: str
    name_en: str
    parent_id: int | None


@dataclass(frozen=True)
class InviteUse:
    """What redeeming an invite did: enrolled a role, or bound the chat to a unit."""

    purpose: str  # enrol | bind_chat
    role: Role | None = None
    area_id: int | None = None
    department_id: int | None = None
    person_id: int | None = None


@dataclass(frozen=True)
class ShownMessage:
    """A message the bot sent that shows a case (its card, its rating buttons): edited in place
    when the case moves on, so it never offers what no longer works."""

    channel: str
    chat_id: str
    message_id: str
    purpose: str  # case_card | rating | supervision
    caption: bool = False  # the text is a photo's caption
    locale: str | None = None  # the language of the person whose private chat it is
    # An outbox row not sent yet (message_id is then empty): rewritten in place, not edited.
    pending_row: int | None = None
    # What the edit needs that the case does not say, kept as it was sent (Outgoing.context).
    context: dict[str, Any] | None = None


class ChannelStore(Protocol):
    async def conversation(self, channel: str, chat_id: str, user_id: str) -> Conversation: ...

    async def save_conversation(self, conversation: Conversation, now: datetime) -> None: ...

    async def person_for(self, channel: str, external_id: str) -> Person | None: ...

    async def enrol_resident(
        self, channel: str, external_id: str, name: str, language: str, grid_id: int,
        now: datetime,
    ) -> Person: ...  # fmt: skip

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
    ) -> InviteUse: ...

    async def bindings_of_chat(self, channel: str, chat_id: str) -> list[ChatBinding]: ...

    async def chats_for(
        self, purpose: str, *, area_id: int | None = None, department_id: int | None = None
    ) -> list[ChatBinding]: ...

    async def identities_of(self, person_id: int) -> list[tuple[str, str]]: ...

    async def case_for_message(
        self, channel: str, chat_id: str, message_id: str
    ) -> tuple[str, str] | None: ...

    async def messages_showing(
        self, number: str, purposes: frozenset[str], limit: int
    ) -> list[ShownMessage]: ...

    async def mark_processed(self, channel: str, key: str, now: datetime) -> bool: ...

    async def places(self, kind: str, parent_id: int | None = None) -> list[Place]: ...

    async def place(self, place_id: int) -> Place | None: ...

    async def place_by_code(self, code: str) -> Place | None: ...
