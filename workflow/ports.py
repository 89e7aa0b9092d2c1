"""The small interfaces the domain needs from storage; fakes implement them in unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol, Self

from workflow.clock import SHANGHAI, Clock
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
    # It answers what the chat's user just did (the turn's reply to its own chat): sent ahead
    # of background rows to other chats, so the person who is waiting is served first.
    answer: bool = False


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


class ReminderStore(Protocol):
    """What the sweeper reads and records; `record` is the once-only guarantee."""

    async def due_numbers(self, now: datetime, limit: int) -> list[str]: ...

    async def recorded(self, case_id: int, stage_key: str) -> set[str]: ...

    async def record(
        self, case_id: int, stage_key: str, thresholds: list[Any], sent: set[str], now: datetime
    ) -> set[str]: ...

    async def set_next(self, case: Case, at: datetime | None) -> bool: ...

    async def postpone(self, case_number: str, at: datetime) -> None: ...


class CalendarStore(Protocol):
    async def load(self) -> WorkCalendar: ...


class Outbox(Protocol):
    async def add(self, message: OutgoingMessage) -> None: ...

    async def rewrite(self, row_id: int, changes: dict[str, Any]) -> None:
        """A message still waiting to go out, changed (a card whose case moved before it was
        sent); nothing when it is no longer pending."""


class UnitOfWork(Protocol):
    """One transaction: everything a service does commits together or not at all."""

    # Read-only members, so an implementation may hold its own concrete repositories.
    @property
    def cases(self) -> CaseRepository: ...

    @property
    def org(self) -> OrgDirectory: ...

    @property
    def calendar(self) -> CalendarStore: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def clock(self) -> Clock: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class EventHook(Protocol):
    """Turns domain events into outbox rows inside the same unit of work (set by handlers/)."""

    async def __call__(self, uow: UnitOfWork, events: list[CaseEvent]) -> None: ...


class SweepUnitOfWork(UnitOfWork, Protocol):
    """The unit of work the sweeper needs: the usual one plus the reminder records."""

    @property
    def reminders(self) -> ReminderStore: ...


# Reports: rates, digests and the weekly analysis. The numbers are computed in
# storage/analytics/; what each one means is written down in docs/rates.md.

UNIT_KINDS = ("department", "township")


@dataclass(frozen=True)
class Period:
    """A half-open time range [start, end) of aware datetimes: a day, a week, a month."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs timezone-aware start and end")
        if not self.start < self.end:
            raise ValueError(f"a period must end after it starts: {self.start} .. {self.end}")

    @classmethod
    def local_days(cls, first: date, days: int = 1) -> Period:
        """Whole days on the county's (Asia/Shanghai) calendar, from midnight to midnight."""
        start = datetime.combine(first, time(0), tzinfo=SHANGHAI)
        return cls(start, datetime.combine(first + timedelta(days=days), time(0), tzinfo=SHANGHAI))

    @classmethod
    def week_of(cls, day: date) -> Period:
        """The Monday-to-Sunday week that contains `day`."""
        return cls.local_days(day - timedelta(days=day.weekday()), 7)

    @property
    def iso_week(self) -> str:
        """'2026-W47' for the week the period starts in (Asia/Shanghai)."""
        year, week, _ = self.start.astimezone(SHANGHAI).isocalendar()
        return f"{year:04d}-W{week:02d}"


def _ratio(numerator: int, denominator: int) -> float | None:
    """None, not 0, when there is nothing to measure: shown as "—", never as a bad score."""
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class UnitRates:
    """One row of a ranking: a department's or township's cases of a period and their outcome."""

    kind: str  # department | township | county
    unit_id: int
    code: str
    name_zh: str
    name_en: str
    cases: int = 0  # the base set: valid cases of the unit created in the period
    replied: int = 0  # taken in hand (签收) by the unit that holds them
    resolved: int = 0  # result reported (办结) and not reopened
    resolved_on_time: int = 0  # resolved no later than their deadline
    rated: int = 0
    satisfied: int = 0  # satisfied + basically satisfied
    avg_hours_to_close: float | None = None  # created -> resolved, over the resolved ones
    returned: int = 0  # returns (退回) that happened in the period
    reopened: int = 0  # dissatisfied ratings in the period that reopened or escalated a case
    overdue_open: int = 0  # not resolved and past their deadline when computed
    # Returns in the period made after the returning department's stage deadline. For a
    # department each is a late case in its on-time denominator (the case itself left its set);
    # a township's or the county's row shows those of its cases, which still count by outcome.
    late_returns: int = 0

    @property
    def reply_rate(self) -> float | None:
        return _ratio(self.replied, self.cases)

    @property
    def closure_rate(self) -> float | None:
        return _ratio(self.resolved, self.cases)

    @property
    def on_time_rate(self) -> float | None:
        """Resolved on time among the cases whose timeliness is known: resolved or overdue,
        and for a department the cases it returned late."""
        return _ratio(self.resolved_on_time, self.on_time_known)

    @property
    def on_time_known(self) -> int:
        """The on-time rate's denominator."""
        charged = self.late_returns if self.kind == "department" else 0
        return self.resolved + self.overdue_open + charged

    @property
    def satisfaction_rate(self) -> float | None:
        return _ratio(self.satisfied, self.rated)

    @property
    def avg_days_to_close(self) -> float | None:
        return None if self.avg_hours_to_close is None else self.avg_hours_to_close / 24


@dataclass(frozen=True)
class RankedItem:
    """A category or grid with how many valid cases it had in a period (top lists)."""

    kind: str  # category | grid
    id: int
    code: str
    name_zh: str
    name_en: str
    cases: int
    parent_zh: str | None = None  # a grid's township
    parent_en: str | None = None


@dataclass(frozen=True)
class Setback:
    """A case sent back in the period: returned by a department, or its result rejected."""

    number: str
    event: str  # returned | reopened | escalated
    at: datetime
    township_id: int
    department_id: int | None  # the department that held the case then
    department_zh: str | None
    department_en: str | None
    comment: str | None  # the return reason, or the reporter's comment
    late: bool = False  # a return made after the returning unit's stage deadline


@dataclass(frozen=True)
class UnitRef:
    """A department or township (street) that gets a morning digest."""

    kind: str  # department | township
    id: int
    code: str
    name_zh: str
    name_en: str

    @property
    def target(self) -> str:
        """The digest_runs key: 'department:12'."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class UnitDigest:
    """A unit's morning lists, case numbers most urgent first (a case may be in several)."""

    unit: UnitRef
    new: tuple[str, ...] = ()  # came to the unit in the window (since the last digest)
    due_today: tuple[str, ...] = ()  # held by the unit, its stage deadline falls later today
    overdue: tuple[str, ...] = ()  # held by the unit, its stage deadline has passed
    waiting: tuple[str, ...] = ()  # waiting for the unit to accept (签收) or take it
    # A department's returns in the window made after its stage deadline (docs/rates.md).
    late_returns: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.new or self.due_today or self.overdue or self.waiting or self.late_returns)


class Reports(Protocol):
    """Read side for digests, the weekly analysis and the dashboard, plus the digest records."""

    async def unit_rates(
        self,
        kind: str,
        period: Period,
        *,
        as_of: datetime,
        township_id: int | None = None,
        department_id: int | None = None,
        category_id: int | None = None,
    ) -> list[UnitRates]: ...

    async def county_rates(
        self, period: Period, *, as_of: datetime, category_id: int | None = None
    ) -> UnitRates: ...

    async def top_categories(self, period: Period, limit: int = 5) -> list[RankedItem]: ...

    async def top_grids(self, period: Period, limit: int = 5) -> list[RankedItem]: ...

    async def setbacks(self, period: Period) -> list[Setback]: ...

    async def units(self, kind: str) -> list[UnitRef]: ...

    async def unit_digest(self, unit: UnitRef, window: Period, now: datetime) -> UnitDigest: ...

    async def runs_recorded(self, kind: str, period: str) -> set[str]: ...

    async def claim_run(self, kind: str, target: str, period: str, now: datetime) -> bool: ...
