"""What the conversations and notifications need from storage: the workflow's unit of work
plus the channel store, the reminder records and the reports (storage implements them all)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from workflow.cards import CaseCard, ProposedDepartment
from workflow.channels import (
    ChannelStore,
    ChatBinding,
    Conversation,
    InviteUse,
    Person,
    Place,
    RoleGrant,
)
from workflow.model import Role
from workflow.ports import ReminderStore, Reports, SweepUnitOfWork

__all__ = [
    "CaseCard",
    "ChannelStore",
    "ChatBinding",
    "ChatStore",
    "Conversation",
    "HasChats",
    "InviteUse",
    "Person",
    "Place",
    "ProposedDepartment",
    "ReminderStore",
    "Reports",
    "RoleGrant",
    "UnitOfWork",
    "chats_of",
]

Chat = tuple[str, str, str]  # channel, chat id, locale


class ChatStore(ChannelStore, Protocol):
    """The channel store plus what chat messages read of cases and people."""

    async def begin_turn(
        self, channel: str, chat_id: str, update_key: str | None, now: datetime
    ) -> bool:
        """The turn's first statement: hold this chat's turns to one at a time (across
        processes) until the transaction ends, and mark the update processed when it has a
        key; False when it was processed already (a redelivery: nothing to do)."""

    async def turn_state(
        self, channel: str, chat_id: str, user_id: str
    ) -> tuple[Person | None, Conversation]:
        """person_for and conversation at once: what every turn reads first."""

    async def nearest_grid(
        self, latitude: float, longitude: float, max_km: float = ...
    ) -> Place | None: ...

    async def case_card(self, number: str) -> CaseCard: ...

    async def case_summary(self, number: str, person_id: int) -> dict[str, Any] | None: ...

    async def cases_of_reporter(self, person_id: int, limit: int = 10) -> list[dict[str, Any]]: ...

    async def private_chats_of(self, person_id: int) -> list[Chat]: ...

    async def private_chats_with_role(
        self, role: Role, *, area_id: int | None = None, department_id: int | None = None,
        channels: frozenset[str] = ...,
    ) -> list[Chat]:  # fmt: skip
        """Their private chats on the delivered `channels` (default: all)."""

    async def desk_chats_with_role(
        self, role: Role, *, area_id: int | None = None, department_id: int | None = None,
        channels: frozenset[str] = ...,
    ) -> list[Chat]:  # fmt: skip
        """The staff web workspaces of people holding `role` there who have no chat account
        on any other delivered channel (a unit's group chat cannot reach them)."""


class UnitOfWork(SweepUnitOfWork, Protocol):
    """The handlers' unit of work: the workflow's, its reminder records, chats and reports."""

    @property
    def channels(self) -> ChatStore: ...

    @property
    def reminders(self) -> ReminderStore: ...

    @property
    def reports(self) -> Reports: ...


@runtime_checkable
class HasChats(Protocol):
    @property
    def channels(self) -> ChatStore: ...


def chats_of(uow: object) -> ChatStore:
    """The channel store of the unit of work the workflow hands its hooks. The workflow knows
    only its own ports; the composition root gives it units of work that have chats too."""
    if not isinstance(uow, HasChats):
        raise TypeError(f"{type(uow).__name__} has no channel store (.channels)")
    return uow.channels
