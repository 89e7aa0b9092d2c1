"""Firing an event on a case: table lookup, role, scope, guards, then the case's data changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NoReturn

from workflow.deadlines import WorkCalendar, deadline
from workflow.errors import GuardFailed, IllegalTransition, NotPermitted
from workflow.events import CaseEvent
from workflow.guards import Guard, GuardContext
from workflow.model import (
    LEVEL_STATE,
    Action,
    Actor,
    Case,
    Rating,
    State,
    TrailEntry,
)
from workflow.policy import WorkflowPolicy
from workflow.reminders import first_reminder_at
from workflow.states import TERMINAL_STATES
from workflow.table import (
    SCOPE_OF_ROLE,
    NextOnRoute,
    Same,
    Scope,
    Transition,
    transitions_for,
)


def in_scope(actor: Actor, case: Case, scope: Scope) -> bool:
    """Whether the case lies within what the actor serves."""
    if scope is Scope.ALL:
        return True
    if scope is Scope.REPORTER:
        return actor.person_id is not None and actor.person_id == case.reporter_id
    if scope is Scope.GRID:
        return case.grid_id in actor.grid_ids
    if scope is Scope.TOWNSHIP:
        return case.township_id in actor.township_ids
    if scope is Scope.DEPARTMENT:
        return case.department_id is not None and case.department_id in actor.department_ids
    return False


def may_see(actor: Actor, case: Case, history: Sequence[TrailEntry] = ()) -> bool:
    """Whether the case is the actor's business at all: they reported it, it lies within what
    their role serves, or (from its history) they acted on it or their department held it.
    For anyone else the case does not exist: refusals must not tell them its state."""
    if actor.person_id is not None and actor.person_id == case.reporter_id:
        return True
    if in_scope(actor, case, SCOPE_OF_ROLE[actor.role]):
        return True
    return any(
        (entry.actor_id is not None and entry.actor_id == actor.person_id)
        or entry.data.get("department_id") in actor.department_ids
        for entry in history
    )


def rows_open_to(case: Case, action: Action, actor: Actor) -> list[Transition]:
    """The rows `actor` could fire on the case as it is now, before anything is asked of them:
    the state, the role, the scope, and the guards that read only the case (who holds it, how
    often it was reopened). A card's button is refused here, at the press, when it is stale:
    another unit holds the case now, or the action no longer exists in its state."""
    rows = transitions_for(action, case.state)
    if not rows:
        raise IllegalTransition(
            message=f"cannot {action.value} a case that is {case.state.value}",
            action=action.value,
            state=case.state.value,
        )
    rows = [t for t in rows if actor.role in t.roles]
    if not rows:
        raise NotPermitted(
            "role_not_allowed",
            f"a {actor.role.value} may not {action.value} a case that is {case.state.value}",
            action=action.value,
            role=actor.role.value,
            state=case.state.value,
        )
    rows = [t for t in rows if in_scope(actor, case, t.scope or SCOPE_OF_ROLE[actor.role])]
    if not rows:
        raise NotPermitted(
            "not_your_case",
            f"case {case.number} is outside what this {actor.role.value} serves",
            action=action.value,
            role=actor.role.value,
            case=case.number,
        )
    ctx = GuardContext(
        case=case, actor=actor, params={}, policy=_CASE_ONLY_POLICY, now=case.created_at
    )
    open_rows = [t for t in rows if all(g(ctx) for g in t.guards if g.case_only)]
    if not open_rows:
        _refuse(
            case, action, [next(g for g in t.guards if g.case_only and not g(ctx)) for t in rows]
        )
    return open_rows


# Case-only guards read the case alone; the context still wants a policy. Made once: parsing
# its limits on every check cost more than the check (every press and every card's buttons).
_CASE_ONLY_POLICY = WorkflowPolicy()


def _refuse(case: Case, action: Action, failures: list[Guard]) -> NoReturn:
    first_failure = failures[0]
    raise GuardFailed(
        first_failure.error_code,
        f"{action.value} refused: {first_failure.error_code.replace('_', ' ')}",
        action=action.value,
        guard=first_failure.name,
        case=case.number,
    )


def select_transition(
    case: Case,
    action: Action,
    actor: Actor,
    params: dict[str, Any],
    policy: WorkflowPolicy,
    now: datetime,
) -> Transition:
    """Find the one row of the table that applies, or raise why none does."""
    rows = rows_open_to(case, action, actor)
    ctx = GuardContext(case=case, actor=actor, params=params, policy=policy, now=now)
    failures: list[Guard] = []
    for row in rows:
        failed = next((g for g in row.guards if not g(ctx)), None)
        if failed is None:
            return row
        failures.append(failed)
    # rows_open_to refuses when no row is left, so every one of them failed a guard.
    _refuse(case, action, failures)


def resolve_target(row: Transition, case: Case, policy: WorkflowPolicy) -> State:
    if isinstance(row.target, Same):
        return case.state
    if isinstance(row.target, NextOnRoute):
        return LEVEL_STATE[policy.next_level(case.deadline_class, row.target.after)]
    return row.target


def fire(
    case: Case,
    action: Action,
    actor: Actor,
    params: dict[str, Any],
    *,
    policy: WorkflowPolicy,
    calendar: WorkCalendar,
    now: datetime,
) -> CaseEvent:
    """Apply one event to the case in memory; raises before touching anything if it is illegal."""
    row = select_transition(case, action, actor, params, policy, now)
    source = case.state
    target = resolve_target(row, case, policy)
    stage_due = case.stage_due_at  # the deadline of the stage the case is leaving
    _apply_data(case, action, params, source, target, now)
    case.state = target
    if target is not source or action in (Action.RECLASSIFY, Action.SUBMIT):
        if target is not source:
            case.stage_entered_at = now
        schedule(case, policy, calendar)
    comment = _comment(action, params)
    data = {k: _plain(v) for k, v in params.items() if k not in _COMMENT_KEYS and v is not None}
    data.pop("attachment_ids", None)
    if action is Action.RETURN:
        # A return after the unit's stage deadline is a late case for it (docs/rates.md).
        data["late"] = stage_due is not None and now > stage_due
    attachments = tuple(params.get("attachment_ids") or ())
    entry = TrailEntry(
        action=action,
        from_state=source,
        to_state=target,
        actor_id=actor.person_id,
        actor_role=actor.role,
        at=now,
        comment=comment,
        data=data,
        attachment_ids=attachments,
    )
    case.new_entries.append(entry)
    return row.emits(case_number=case.number, entry=entry)


_COMMENT_KEYS = ("reason", "text", "comment")


def _comment(action: Action, params: dict[str, Any]) -> str | None:
    for key in _COMMENT_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Rating | State | Action) else value


def _apply_data(
    case: Case,
    action: Action,
    params: dict[str, Any],
    source: State,
    target: State,
    now: datetime,
) -> None:
    """The case's own fields that an event changes; no messages, no I/O."""
    if action in (Action.ACCEPT, Action.RETURN, Action.NOTE, Action.HANDLE_LOCALLY):
        case.first_response_at = case.first_response_at or now
    if action is Action.RECLASSIFY:
        case.category_id = params["category_id"]
        case.deadline_class = params["deadline_class"]
    elif action is Action.MARK_DUPLICATE:
        case.duplicate_of = params["duplicate_of"]
    elif action is Action.HANDLE_LOCALLY:
        case.handled_by_township = True
        case.accepted_at = now
    elif action is Action.PASS_UP:
        # The county center holds it now, unassigned: the township's reply goes with it.
        case.handled_by_township = False
        case.accepted_at = None
    elif action is Action.ASSIGN:
        case.department_id = params["department_id"]
        case.handled_by_township = False
        case.accepted_at = None
    elif action is Action.ACCEPT:
        case.accepted_at = now
    elif action is Action.RETURN:
        case.department_id = None
        case.accepted_at = None
    elif action is Action.RESOLVE:
        case.resolved_at = now
    elif action is Action.RATE:
        case.rating = params["rating"]
        case.rating_comment = (params.get("comment") or "").strip() or None
        if target is State.IN_PROGRESS:
            # Reopened to the same holder once, with a fresh time limit from now.
            case.reopen_count += 1
            case.resolved_at = None
            case.due_basis_at = now
    elif action is Action.SUPERVISE:
        case.supervise_count += 1
    if target in TERMINAL_STATES:
        case.closed_at = now


def schedule(case: Case, policy: WorkflowPolicy, calendar: WorkCalendar) -> None:
    """(Re)compute the overall and the current stage's deadline from their stored starting points.

    Pure function of the case's bases, so a new official calendar can recompute open cases.
    """
    if case.due_basis_at is None:
        case.due_basis_at = case.created_at
    class_limit = policy.class_limits[case.deadline_class]
    overall = deadline(case.due_basis_at, class_limit, calendar)
    case.due_at = overall.at
    # The rates' deadline: from the report, whatever reopenings restarted the clock since.
    first = overall if case.due_basis_at == case.created_at else None
    case.original_due_at = (first or deadline(case.created_at, class_limit, calendar)).at
    provisional = overall.provisional
    entered = case.stage_entered_at or case.created_at
    if case.state in TERMINAL_STATES:
        case.stage_due_at = None
    elif case.state is State.RESOLVED:
        base = case.resolved_at or entered
        case.stage_due_at = base + timedelta(days=policy.close_unrated_after_days)
    elif case.state is State.SUPERVISION:
        case.stage_due_at = None
    else:
        limit = policy.stage_limit(case.deadline_class, case.state)
        if limit is None:
            case.stage_due_at = overall.at
        else:
            stage = deadline(entered, limit, calendar)
            provisional = provisional or stage.provisional
            case.stage_due_at = min(stage.at, overall.at)
    case.due_provisional = provisional
    case.next_reminder_at = first_reminder_at(case, policy, calendar)


def copy_case(case: Case) -> Case:
    """A detached copy, so a refused event can be shown to leave the original untouched."""
    return replace(case, new_entries=list(case.new_entries))
