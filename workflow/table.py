"""THE transition table: every state change a case can make, who may make it, and its guards.

Nothing else in shuoshi decides whether an event is legal; services, handlers, the
dashboard's buttons and the tests all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workflow import events as E
from workflow.events import CaseEvent
from workflow.guards import (
    Guard,
    actor_holds_case,
    has_department,
    has_duplicate_target,
    has_new_category,
    has_rating,
    has_reason,
    has_text,
    has_text_or_photos,
    held_by_department,
    held_by_township,
    not_reopened_before,
    rating_is_negative,
    rating_is_positive,
    rating_window_passed,
    reopened_before,
)
from workflow.model import Action, Level, Role, State
from workflow.model import Action as A
from workflow.model import Role as R
from workflow.model import State as S
from workflow.states import OPEN_STATES, TERMINAL_STATES


class Scope(StrEnum):
    """Which cases a role may touch."""

    ALL = "all"
    REPORTER = "reporter"  # cases the actor reported
    GRID = "grid"  # cases in the actor's grids
    TOWNSHIP = "township"  # cases in the actor's township
    DEPARTMENT = "department"  # cases assigned to the actor's department


SCOPE_OF_ROLE: dict[Role, Scope] = {
    R.RESIDENT: Scope.REPORTER,
    R.GRID_WORKER: Scope.GRID,
    R.GRID_LEADER: Scope.GRID,
    R.TOWNSHIP_OPERATOR: Scope.TOWNSHIP,
    R.COUNTY_DISPATCHER: Scope.ALL,
    R.DEPARTMENT_HANDLER: Scope.DEPARTMENT,
    R.SUPERVISOR: Scope.ALL,
    R.ADMIN: Scope.ALL,
    R.SYSTEM: Scope.ALL,
}


class Same:
    """Target marker: the case stays where it is (notes, supervision, reclassification)."""

    def __repr__(self) -> str:
        return "SAME"


SAME = Same()


class Ask(StrEnum):
    """What a screen must ask the person before the action can fire."""

    NOTHING = "nothing"  # one press fires it
    REASON = "reason"  # a reason in words (invalid, return, close)
    TEXT = "text"  # words (a supervisor's instruction)
    TEXT_OR_PHOTOS = "text_or_photos"  # a progress note: words, a photo, or both
    RESULT = "result"  # result text, photos of the site, then a confirmation (办结)
    DEPARTMENT = "department"  # which department: the category's owners, on the card itself
    DUPLICATE = "duplicate"  # the number of the case this one duplicates
    CATEGORY = "category"  # the new category
    RATING = "rating"  # satisfied / basically / dissatisfied, then an optional comment


@dataclass(frozen=True)
class Screen:
    """What a chat needs to offer an action: the button and what it asks first."""

    code: str  # in callback data: short, one meaning (tests check it is unique)
    label: str  # the macro in templates/chat.html.j2 that names the button
    asks: Ask = Ask.NOTHING


# One screen per action people take in chat. submit is the report dialogue (no card button);
# route and close_unrated are the system's own.
SCREENS: dict[Action, Screen] = {
    A.SCREEN_VALID: Screen("sv", "btn_valid"),
    A.SCREEN_INVALID: Screen("si", "btn_invalid", Ask.REASON),
    A.MARK_DUPLICATE: Screen("dp", "btn_duplicate", Ask.DUPLICATE),
    A.RECLASSIFY: Screen("rc", "btn_reclassify", Ask.CATEGORY),
    A.HANDLE_LOCALLY: Screen("hl", "btn_handle_here"),
    A.PASS_UP: Screen("pu", "btn_pass_up"),
    A.ASSIGN: Screen("as", "btn_assign", Ask.DEPARTMENT),
    A.ACCEPT: Screen("ac", "btn_accept"),
    A.RETURN: Screen("rn", "btn_return", Ask.REASON),
    A.NOTE: Screen("nt", "btn_note", Ask.TEXT_OR_PHOTOS),
    A.RESOLVE: Screen("rs", "btn_resolve", Ask.RESULT),
    A.RATE: Screen("ra", "btn_rate", Ask.RATING),
    A.CLOSE: Screen("cl", "btn_close", Ask.REASON),
    A.SUPERVISE: Screen("su", "btn_instruct", Ask.TEXT),
}
# Codes that cards already sent may still carry: "rt" was the return button until it was
# renamed "rn" (it also named the rating buttons).
LEGACY_CODES: dict[str, Action] = {"rt": A.RETURN}
ACTION_OF_CODE: dict[str, Action] = {
    **LEGACY_CODES,
    **{screen.code: action for action, screen in SCREENS.items()},
}


@dataclass(frozen=True)
class NextOnRoute:
    """Target marker: the next level on the configured route after `after` (None: the first)."""

    after: Level | None


Target = State | Same | NextOnRoute


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[State]
    target: Target
    roles: frozenset[Role]
    emits: type[CaseEvent]  # the event class a change by this row announces
    guards: tuple[Guard, ...] = ()
    scope: Scope | None = None  # overrides the role's scope when set

    @property
    def screen(self) -> Screen | None:
        """The button and questions that offer this row in chat (None: no person's screen)."""
        return SCREENS.get(self.action)


def T(
    action: Action,
    sources: State | frozenset[State] | set[State],
    target: Target,
    roles: Role | set[Role],
    guards: tuple[Guard, ...] = (),
    *,
    emits: type[CaseEvent],
    scope: Scope | None = None,
) -> Transition:
    return Transition(
        action=action,
        sources=frozenset({sources} if isinstance(sources, State) else sources),
        target=target,
        roles=frozenset({roles} if isinstance(roles, Role) else roles),
        guards=guards,
        emits=emits,
        scope=scope,
    )


_REPORTERS = {R.RESIDENT, R.GRID_WORKER, R.TOWNSHIP_OPERATOR, R.COUNTY_DISPATCHER}
_HOLDERS = {R.DEPARTMENT_HANDLER, R.TOWNSHIP_OPERATOR}
_OPEN = frozenset(OPEN_STATES)

# (level's state, the role that screens at that level)
_SCREENERS = (
    (S.SCREENING, R.GRID_LEADER),
    (S.TOWNSHIP, R.TOWNSHIP_OPERATOR),
    (frozenset({S.COUNTY, S.RETURNED}), R.COUNTY_DISPATCHER),
)

TRANSITIONS: tuple[Transition, ...] = (
    T(A.SUBMIT, S.NEW, S.REPORTED, _REPORTERS, emits=E.CaseReported),
    T(A.ROUTE, S.REPORTED, NextOnRoute(None), R.SYSTEM, emits=E.CaseRouted),
    T(A.SCREEN_VALID, S.SCREENING, NextOnRoute(Level.SCREENING), R.GRID_LEADER,
      emits=E.CaseValidated),
    *(
        T(A.SCREEN_INVALID, src, S.REJECTED, role, (has_reason,), emits=E.CaseRejected)
        for src, role in _SCREENERS
    ),
    *(
        T(A.MARK_DUPLICATE, src, S.DUPLICATE, role, (has_duplicate_target,),
          emits=E.CaseMarkedDuplicate)
        for src, role in _SCREENERS
    ),
    *(
        T(A.RECLASSIFY, src, SAME, role, (has_new_category,), emits=E.CaseReclassified)
        for src, role in _SCREENERS
    ),
    T(A.HANDLE_LOCALLY, S.TOWNSHIP, S.IN_PROGRESS, R.TOWNSHIP_OPERATOR,
      emits=E.CaseTakenByTownship),
    T(A.PASS_UP, S.TOWNSHIP, NextOnRoute(Level.TOWNSHIP), R.TOWNSHIP_OPERATOR,
      emits=E.CasePassedUp),
    T(A.PASS_UP, S.IN_PROGRESS, NextOnRoute(Level.TOWNSHIP), R.TOWNSHIP_OPERATOR,
      (held_by_township,), emits=E.CasePassedUp),
    T(A.ASSIGN, {S.COUNTY, S.RETURNED}, S.ASSIGNED, R.COUNTY_DISPATCHER, (has_department,),
      emits=E.CaseAssigned),
    T(A.ASSIGN, S.SUPERVISION, S.ASSIGNED, R.SUPERVISOR, (has_department,),
      emits=E.CaseAssigned),
    T(A.ACCEPT, S.ASSIGNED, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, emits=E.CaseAccepted),
    T(A.RETURN, {S.ASSIGNED, S.IN_PROGRESS}, S.RETURNED, R.DEPARTMENT_HANDLER,
      (held_by_department, has_reason), emits=E.CaseReturned),
    T(A.NOTE, S.IN_PROGRESS, SAME, _HOLDERS, (actor_holds_case, has_text_or_photos),
      emits=E.ProgressNoted),
    T(A.RESOLVE, S.IN_PROGRESS, S.RESOLVED, _HOLDERS, (actor_holds_case, has_text),
      emits=E.CaseResolved),
    T(A.RATE, S.RESOLVED, S.CLOSED, {R.RESIDENT, R.GRID_WORKER}, (has_rating, rating_is_positive),
      emits=E.CaseRated, scope=Scope.REPORTER),
    T(A.RATE, S.RESOLVED, S.IN_PROGRESS, {R.RESIDENT, R.GRID_WORKER},
      (has_rating, rating_is_negative, not_reopened_before), emits=E.CaseReopened,
      scope=Scope.REPORTER),
    T(A.RATE, S.RESOLVED, S.SUPERVISION, {R.RESIDENT, R.GRID_WORKER},
      (has_rating, rating_is_negative, reopened_before), emits=E.CaseEscalated,
      scope=Scope.REPORTER),
    T(A.CLOSE, S.SUPERVISION, S.CLOSED, R.SUPERVISOR, (has_reason,), emits=E.CaseClosed),
    T(A.CLOSE_UNRATED, S.RESOLVED, S.CLOSED_UNRATED, R.SYSTEM, (rating_window_passed,),
      emits=E.CaseClosedUnrated),
    T(A.SUPERVISE, _OPEN, SAME, R.SUPERVISOR, (has_reason,), emits=E.CaseSupervised),
)  # fmt: skip

# Every event a case can announce: handlers and their tests take the set from here.
EMITTED_EVENTS: frozenset[type[CaseEvent]] = frozenset(t.emits for t in TRANSITIONS)

# What the reporter is told of (the receipt promises "you will hear of every step"): the one
# place that decides it. handlers/notify.py gives each its message (SHOWN_TO_REPORTER, checked
# against this set) and the reporter's /my timeline shows the same steps (REPORTER_TIMELINE).
# Internal moves (a return, a reclassification, supervision) stay inside.
REPORTER_NEWS: frozenset[type[CaseEvent]] = frozenset({
    E.CaseValidated, E.CaseRejected, E.CaseMarkedDuplicate, E.CaseTakenByTownship,
    E.CasePassedUp, E.CaseAssigned, E.CaseAccepted, E.ProgressNoted, E.CaseResolved,
    E.CaseReopened, E.CaseClosed,
})  # fmt: skip


def _reporter_timeline() -> frozenset[Action]:
    """The trail entries a reporter sees of their case: the steps they are told of, what a
    reporter does themselves (the report, the rating), and every end, a quiet one included (an
    unrated close tells nobody, but the case is over)."""
    reporters = {R.RESIDENT, R.GRID_WORKER}
    return frozenset(
        t.action
        for t in TRANSITIONS
        if t.emits in REPORTER_NEWS
        or t.roles & reporters
        or (isinstance(t.target, State) and t.target in TERMINAL_STATES)
    )


REPORTER_TIMELINE: frozenset[Action] = _reporter_timeline()


def transitions_for(action: Action, state: State) -> list[Transition]:
    return [t for t in TRANSITIONS if t.action is action and state in t.sources]


def available_actions(state: State, role: Role) -> list[Action]:
    """Which buttons a role may be shown for a case in this state (before scope and guards)."""
    seen: list[Action] = []
    for t in TRANSITIONS:
        if state in t.sources and role in t.roles and t.action not in seen:
            seen.append(t.action)
    return seen


def offered_actions(state: State, role: Role) -> list[Action]:
    """The actions a card offers a role for a case in this state: allowed, and with a screen."""
    return [a for a in available_actions(state, role) if a in SCREENS]
