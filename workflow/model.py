"""Roles, states, actions and the Case aggregate with its append-only trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    RESIDENT = "resident"
    GRID_WORKER = "grid_worker"
    GRID_LEADER = "grid_leader"
    TOWNSHIP_OPERATOR = "township_operator"
    COUNTY_DISPATCHER = "county_dispatcher"
    DEPARTMENT_HANDLER = "department_handler"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    # The sweeper and automatic routing act as SYSTEM; no person can hold it.
    SYSTEM = "system"


HUMAN_ROLES: tuple[Role, ...] = tuple(r for r in Role if r is not Role.SYSTEM)


class State(StrEnum):
    NEW = "new"  # before submit; never stored
    REPORTED = "reported"
    SCREENING = "screening"
    TOWNSHIP = "township"
    COUNTY = "county"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    SUPERVISION = "supervision"
    RETURNED = "returned"
    CLOSED = "closed"
    CLOSED_UNRATED = "closed_unrated"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


# What each state means (holder, stage, open or not) is declared in workflow/states.py.


class Action(StrEnum):
    SUBMIT = "submit"
    ROUTE = "route"
    SCREEN_VALID = "screen_valid"
    SCREEN_INVALID = "screen_invalid"
    MARK_DUPLICATE = "mark_duplicate"
    RECLASSIFY = "reclassify"
    HANDLE_LOCALLY = "handle_locally"
    PASS_UP = "pass_up"
    ASSIGN = "assign"
    ACCEPT = "accept"
    RETURN = "return"
    NOTE = "note"
    RESOLVE = "resolve"
    RATE = "rate"
    CLOSE = "close"
    CLOSE_UNRATED = "close_unrated"
    SUPERVISE = "supervise"


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


class DeadlineClass(StrEnum):
    EMERGENCY = "emergency"
    LIVELIHOOD = "livelihood"
    GENERAL = "general"


class Level(StrEnum):
    """Intake levels a deployment may put on its route, in this order."""

    SCREENING = "screening"
    TOWNSHIP = "township"
    COUNTY = "county"


LEVEL_STATE = {
    Level.SCREENING: State.SCREENING,
    Level.TOWNSHIP: State.TOWNSHIP,
    Level.COUNTY: State.COUNTY,
}


class Holder(StrEnum):
    """Which kind of unit has the case in hand right now."""

    GRID_LEADER = "grid_leader"
    TOWNSHIP = "township"
    COUNTY = "county"
    DEPARTMENT = "department"
    REPORTER = "reporter"
    SUPERVISOR = "supervisor"
    NONE = "none"


@dataclass(frozen=True)
class Actor:
    """A person acting in one role, with the grids, townships and departments that role covers."""

    person_id: int | None
    role: Role
    grid_ids: frozenset[int] = frozenset()
    township_ids: frozenset[int] = frozenset()
    department_ids: frozenset[int] = frozenset()

    @classmethod
    def system(cls) -> Actor:
        return cls(person_id=None, role=Role.SYSTEM)


@dataclass(frozen=True)
class TrailEntry:
    """One line of a case's history; written once, never changed."""

    action: Action
    from_state: State
    to_state: State
    actor_id: int | None
    actor_role: Role
    at: datetime
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    attachment_ids: tuple[int, ...] = ()
    seq: int | None = None


@dataclass
class Case:
    """The aggregate: a reported problem and where it stands."""

    number: str
    state: State
    category_id: int
    deadline_class: DeadlineClass
    grid_id: int
    village_id: int
    township_id: int
    reporter_id: int | None
    reporter_role: Role
    description: str
    created_at: datetime
    location_text: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    anonymous: bool = False
    contact_phone: str | None = None
    department_id: int | None = None
    handled_by_township: bool = False
    duplicate_of: str | None = None
    reopen_count: int = 0
    supervise_count: int = 0
    rating: Rating | None = None
    rating_comment: str | None = None
    stage_entered_at: datetime | None = None
    stage_due_at: datetime | None = None
    due_basis_at: datetime | None = None
    due_at: datetime | None = None
    # The class limit counted from the report: a reopening's fresh limit (due_at) never moves
    # it, so the rates judge timeliness against it (docs/rates.md, on-time rate).
    original_due_at: datetime | None = None
    due_provisional: bool = False
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    # Set when a department first acts on the case: accept, return or note (reply rate).
    first_response_at: datetime | None = None
    # When the sweeper next looks at the case; set from the reminder thresholds of its stage.
    next_reminder_at: datetime | None = None
    delivery_failed: bool = False
    id: int | None = None
    version: int = 0
    attachment_ids: tuple[int, ...] = ()
    new_entries: list[TrailEntry] = field(default_factory=list, repr=False)

    # What a state means is declared in workflow/states.py, which imports this module: read
    # there at call time (templates such as case_show.txt.j2 ask a case these two questions).
    @property
    def is_open(self) -> bool:
        from workflow.states import is_open

        return is_open(self.state)

    @property
    def holder(self) -> Holder:
        from workflow.states import holder_of

        return holder_of(self.state, self.handled_by_township)
