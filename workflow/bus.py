"""A small message bus: handlers registered per event class, called by the event's class.

Dispatch is by exact class (as in "Architecture Patterns with Python"), never by name: a
handler registered for CaseAssigned is not called for CaseAccepted, and an event class with
no handler is simply not acted on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from workflow.events import Event

C = TypeVar("C")  # what every handler is given besides the event (a unit of work, a context)
R = TypeVar("R")  # what a handler gives back, collected in registration order

# A handler takes the event of the class it is registered for; the registry cannot say that
# per key, so the event is typed Any here and by its class in each handler.
Handler = Callable[[Any, C], Awaitable[Sequence[R]]]


class MessageBus(Generic[C, R]):
    """Calls, for each event, the handlers registered for its class, in order."""

    def __init__(self, handlers: Mapping[type[Event], Sequence[Handler[C, R]]]) -> None:
        self.handlers = handlers

    def handlers_for(self, event: Event) -> Sequence[Handler[C, R]]:
        return self.handlers.get(type(event), ())

    async def handle(self, event: Event, context: C) -> list[R]:
        results: list[R] = []
        for handler in self.handlers_for(event):
            results.extend(await handler(event, context))
        return results
