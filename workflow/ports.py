"""The small interfaces the domain needs from storage; fakes implement them in unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from workflow.clock import Clock
from workflow.deadlines import WorkCalendar
from workflow.events import CaseEvent
from workflow.model import Actor, Case, DeadlineClass, Role, TrailEntry


@dataclass(frozen=True)
class GridPlace:
    grid_id: int
    village_id: int
    township_id: int


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    code: str
    deadline_class: DeadlineClass


@dataclass(frozen=True)
class DepartmentInfo:
    id: int
    code: str


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send later; written in the same transaction as the change that caused it."""

    channel: str
    chat_id: str
    payload: dict[str, Any]
    case_number: str | None = None
    person_id: int | None = None


class CaseRepository(Protocol):
    async def get(self, number: str) -> Case: ...

    async def add(self, case: Case) -> None: ...

    async def save(self, case: Case) -> None: ...

    async def next_number(self, prefix: str, day: date) -> str: ...

    async def open_cases(self) -> list[Case]: ...

    async def history(self, number: str) -> list[TrailEntry]: ...


class OrgDirectory(Protocol):
    async def actor(self, person_id: int, role: Role) -> Actor: ...

    async def grid_place(self, grid_code: str) -> GridPlace: ...

    async def category(self, code: str) -> CategoryInfo: ...

    async def department(self, code: str) -> DepartmentInfo: ...

    async def categories(self) -> list[dict[str, str]]: ...

    async def case_prefix(self) -> str: ...


class CalendarStore(Protocol):
    async def load(self) -> WorkCalendar: ...


class Outbox(Protocol):
    async def add(self, message: OutgoingMessage) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: everything a service does commits together or not at all."""

    cases: CaseRepository
    org: OrgDirectory
    calendar: CalendarStore
    outbox: Outbox
    clock: Clock

    async def __aenter__(self) -> UnitOfWork: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class EventHook(Protocol):
    """Turns domain events into outbox rows inside the same unit of work (set by handlers/)."""

    async def __call__(self, uow: UnitOfWork, events: list[CaseEvent]) -> None: ...
