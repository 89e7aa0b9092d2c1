"""What every notify handler is given (handlers/notify.py, handlers/card_edits.py): the unit of
work and the case cards read so far, and the shape of what a handler tells."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.messages import Outgoing
from handlers.ports import CaseCard, ChatStore, chats_of
from workflow.channels import ALL_CHANNELS
from workflow.ports import UnitOfWork


@dataclass
class Telling:
    """What every notify handler is given: the unit of work, and the case cards read so far.

    One Telling lives for one batch of events; they were all fired before the batch is told,
    so a card read for the first event is the card for the others too.
    """

    uow: UnitOfWork
    default_locale: str
    cards: dict[str, CaseCard] = field(default_factory=dict)
    # The channels this deployment delivers: nothing is addressed to any other.
    enabled: frozenset[str] = ALL_CHANNELS

    @property
    def chats(self) -> ChatStore:
        return chats_of(self.uow)

    async def card(self, number: str) -> CaseCard:
        if number not in self.cards:
            self.cards[number] = await self.chats.case_card(number)
        return self.cards[number]


Told = list[tuple[str, Outgoing]]  # (channel, message) pairs, in the order they go out
# Any: each handler takes its own event class (CaseRouted, ...), so no one type fits them all.
NoticeHandler = Callable[[Any, Telling], Awaitable[Told]]
