"""What each state means, declared once: who holds a case in it, which time limit runs, whether
the case is still open, and what the reporter is shown. Everything that used to list states by
hand (the holder, the superior unit, the stage keys, the analytics' sets, the reminded stages,
the resident's "what happens now" line, the docs' state table) is derived from `STATES`.

The transitions themselves are in `workflow/table.py`; this module sits below it because the
policy (stage limits) and the machine need the state facts, and the table needs both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workflow.model import Holder, State
from workflow.model import State as S


class HolderKind(StrEnum):
    """Who must act on a case in a state; `department_or_township` depends on the case."""

    GRID_LEADER = "grid_leader"
    TOWNSHIP = "township"
    COUNTY = "county"
    # The assigned department, or the township center when it took the case itself.
    DEPARTMENT_OR_TOWNSHIP = "department_or_township"
    REPORTER = "reporter"  # to rate the result
    SUPERVISORS = "supervisors"
    NONE = "none"


class Phase(StrEnum):
    DRAFT = "draft"  # before submit; never stored
    OPEN = "open"  # someone must still act
    CLOSED = "closed"  # ended after the work: counted in the units' figures
    DISMISSED = "dismissed"  # ended as never anybody's work: invalid (无效), duplicate (重复)


@dataclass(frozen=True)
class StateInfo:
    holder: HolderKind
    phase: Phase = Phase.OPEN
    # The stage's time-limit key in [workflow.<class>] settings; None: no stage limit.
    stage: str | None = None
    # A result was reported (办结) and stands: the rates count the case as resolved.
    result: bool = False
    # None: the reporter is shown this state by name. Otherwise internal steps (a department
    # returning the case, a routing in between) are shown to the reporter as this state.
    reporter_sees: State | None = None
    # Ended without the reporter's rating (closed by the system when the rating window
    # passed): a rating that somehow stayed on the case never counts as satisfied.
    unrated: bool = False
    meaning: str = ""  # one line for docs/workflow.md


STATES: dict[State, StateInfo] = {
    S.NEW: StateInfo(HolderKind.NONE, Phase.DRAFT, meaning="before submit; never stored"),
    S.REPORTED: StateInfo(HolderKind.GRID_LEADER,
                          meaning="just submitted; routed at once to the first level of the route"),
    S.SCREENING: StateInfo(HolderKind.GRID_LEADER, stage="screening",
                           meaning="grid leader's first screening (初筛)"),
    S.TOWNSHIP: StateInfo(HolderKind.TOWNSHIP, stage="township",
                          meaning="township / street center"),
    S.COUNTY: StateInfo(HolderKind.COUNTY, stage="county",
                        meaning="county center, to assign a department (派单)"),
    S.ASSIGNED: StateInfo(HolderKind.DEPARTMENT_OR_TOWNSHIP, stage="acceptance",
                          meaning="waiting for the department to accept (签收)"),
    S.IN_PROGRESS: StateInfo(HolderKind.DEPARTMENT_OR_TOWNSHIP,
                             meaning="being handled, by the department or by the township itself"),
    S.RESOLVED: StateInfo(HolderKind.REPORTER, result=True,
                          meaning="result reported (办结), waiting for the reporter's rating"),
    S.SUPERVISION: StateInfo(HolderKind.SUPERVISORS, reporter_sees=S.IN_PROGRESS,
                             meaning="second dissatisfied rating: the supervisor decides "
                                     "(reassign or close)"),
    S.RETURNED: StateInfo(HolderKind.COUNTY, stage="returned", reporter_sees=S.COUNTY,
                          meaning="the department says it is not theirs (退回); back with the "
                                  "county center"),
    S.CLOSED: StateInfo(HolderKind.NONE, Phase.CLOSED, result=True,
                        meaning="rated satisfied / basically satisfied, or closed by a "
                                "supervisor"),
    S.CLOSED_UNRATED: StateInfo(HolderKind.NONE, Phase.CLOSED, result=True, unrated=True,
                                meaning="resolved and not rated within "
                                        "`close_unrated_after_days`; never counts as satisfied"),
    S.REJECTED: StateInfo(HolderKind.NONE, Phase.DISMISSED,
                          meaning="invalid report (无效), with a reason"),
    S.DUPLICATE: StateInfo(HolderKind.NONE, Phase.DISMISSED,
                           meaning="merged into another case; the other case's trail records "
                                   "the link"),
}  # fmt: skip

# The derived sets: nothing else in shuoshi lists states by hand.
OPEN_STATES = frozenset(s for s, i in STATES.items() if i.phase is Phase.OPEN)
TERMINAL_STATES = frozenset(
    s for s, i in STATES.items() if i.phase in (Phase.CLOSED, Phase.DISMISSED)
)
# Never anybody's work: left out of every rate (invalid and duplicate reports).
DISMISSED_STATES = frozenset(s for s, i in STATES.items() if i.phase is Phase.DISMISSED)
# A result was reported and stands (not reopened, not under supervision after a rejection).
RESULT_STATES = frozenset(s for s, i in STATES.items() if i.result)
# Ended without a rating that counts: left out of the satisfied figure whatever is stored.
UNRATED_STATES = frozenset(s for s, i in STATES.items() if i.unrated)
# Stage names as configured ([workflow.<class>] screening = "1wd" ...) -> the state they limit.
STAGE_STATES: dict[str, State] = {i.stage: s for s, i in STATES.items() if i.stage}
# Stages whose holder is a unit that is reminded and supervised when slow.
_UNIT_KINDS = frozenset(
    {HolderKind.GRID_LEADER, HolderKind.TOWNSHIP, HolderKind.COUNTY,
     HolderKind.DEPARTMENT_OR_TOWNSHIP}
)  # fmt: skip
REMINDED_STATES = frozenset(
    s for s, i in STATES.items() if i.holder in _UNIT_KINDS and s is not S.REPORTED
)

# The unit above each holder: supervision's second level goes there. None: above the county
# center (the leaders' chat, else the supervisors themselves).
SUPERIOR: dict[Holder, Holder | None] = {
    Holder.GRID_LEADER: Holder.TOWNSHIP,
    Holder.TOWNSHIP: Holder.COUNTY,
    Holder.DEPARTMENT: Holder.COUNTY,
    Holder.COUNTY: None,
    Holder.SUPERVISOR: None,
    Holder.REPORTER: None,
    Holder.NONE: None,
}
_HOLDER_OF_KIND = {
    HolderKind.GRID_LEADER: Holder.GRID_LEADER,
    HolderKind.TOWNSHIP: Holder.TOWNSHIP,
    HolderKind.COUNTY: Holder.COUNTY,
    HolderKind.REPORTER: Holder.REPORTER,
    HolderKind.SUPERVISORS: Holder.SUPERVISOR,
    HolderKind.NONE: Holder.NONE,
}


def holder_of(state: State, handled_by_township: bool) -> Holder:
    """Who must act next on a case in `state`; the dashboard, cards and reminders all ask this."""
    kind = STATES[state].holder
    if kind is HolderKind.DEPARTMENT_OR_TOWNSHIP:
        return Holder.TOWNSHIP if handled_by_township else Holder.DEPARTMENT
    return _HOLDER_OF_KIND[kind]


def superior_of(state: State, handled_by_township: bool) -> Holder | None:
    """The unit above the holder (None: above the county center, or nobody holds the case)."""
    return SUPERIOR[holder_of(state, handled_by_township)]


def reporter_state(state: State) -> State:
    """The state the reporter is shown: internal steps appear as the step they belong to."""
    return STATES[state].reporter_sees or state


def is_open(state: State) -> bool:
    return state in OPEN_STATES
