"""The case page's stages: how long each holder had the case and whether it kept its limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.queries import CaseView
from workflow.deadlines import WorkCalendar, deadline
from workflow.model import State
from workflow.policy import WorkflowPolicy
from workflow.states import TERMINAL_STATES, holder_of

# No unit's time limit runs in these: the reporter rates, the supervisor follows up.
_UNLIMITED = frozenset({State.REPORTED, State.RESOLVED, State.SUPERVISION})


@dataclass(frozen=True)
class Stage:
    """One stretch of the case in one state, from the trail."""

    state: str
    holder: str
    entered_at: datetime
    left_at: datetime | None  # None: the case is still there
    due_at: datetime | None
    overdue: bool

    def seconds(self, now: datetime) -> int:
        return int(((self.left_at or now) - self.entered_at).total_seconds())


def case_stages(
    view: CaseView, policy: WorkflowPolicy, calendar: WorkCalendar, now: datetime
) -> list[Stage]:
    """Every stage the case went through, with its limit recomputed from the policy and the
    official calendar (the case row keeps only the current stage's deadline)."""
    starts: list[tuple[State, datetime, bool]] = []
    handled_by_township = False
    for item in view.timeline:
        if item.action == "handle_locally":
            handled_by_township = True
        elif item.action in ("pass_up", "assign"):
            handled_by_township = False
        if item.from_state != item.to_state or not starts:
            starts.append((State(item.to_state), item.at, handled_by_township))
    stages = []
    for index, (state, entered, by_township) in enumerate(starts):
        if state in TERMINAL_STATES:
            continue
        left = starts[index + 1][1] if index + 1 < len(starts) else None
        if state is State.REPORTED and left == entered:
            continue  # routed in the same instant: not a stage anyone held
        due = _stage_due(state, entered, view, policy, calendar)
        stages.append(
            Stage(
                state=state.value,
                holder=holder_of(state, by_township).value,
                entered_at=entered,
                left_at=left,
                due_at=due,
                overdue=due is not None and (left or now) > due,
            )
        )
    return stages


def _stage_due(
    state: State,
    entered: datetime,
    view: CaseView,
    policy: WorkflowPolicy,
    calendar: WorkCalendar,
) -> datetime | None:
    if state in _UNLIMITED:
        return None
    overall = view.case.due_at
    limit = policy.stage_limit(view.case.deadline_class, state)
    if limit is None:
        return overall  # handling runs against the overall limit
    due = deadline(entered, limit, calendar).at
    return min(due, overall) if overall is not None else due
