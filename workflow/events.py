"""Domain events, named in the past tense: one class per thing that can happen to a case.

The transition table (workflow/table.py) names the class each row emits, and handlers are
registered per class (workflow/bus.py, handlers/notify.py), so nothing compares event names.
A case event carries the trail entry its transition wrote: what happened is recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflow.model import Action, State, TrailEntry


class Event:
    """Something that happened; its name (the class's name) is what docs and logs show."""

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class CaseEvent(Event):
    """A transition of one case; never built directly, always as one of the classes below."""

    case_number: str
    entry: TrailEntry

    # The entry's fields most readers want, so templates can say `event.comment`.
    @property
    def action(self) -> Action:
        return self.entry.action

    @property
    def from_state(self) -> State:
        return self.entry.from_state

    @property
    def to_state(self) -> State:
        return self.entry.to_state

    @property
    def at(self) -> datetime:
        return self.entry.at

    @property
    def comment(self) -> str | None:
        return self.entry.comment

    @property
    def data(self) -> dict[str, Any]:
        return self.entry.data


class CaseReported(CaseEvent):
    """A resident or staff member submitted a report."""


class CaseRouted(CaseEvent):
    """A new report went to the first level on the route."""


class CaseValidated(CaseEvent):
    """The grid leader found the report valid and passed it on."""


class CaseRejected(CaseEvent):
    """A screening level found the report invalid, with a reason."""


class CaseMarkedDuplicate(CaseEvent):
    """A screening level merged the report into another case."""


class CaseReclassified(CaseEvent):
    """A screening level changed the category (and so the time limits)."""


class CaseTakenByTownship(CaseEvent):
    """The township handles the case itself."""


class CasePassedUp(CaseEvent):
    """The township passed the case up the route."""


class CaseAssigned(CaseEvent):
    """The county center (or a supervisor) assigned the case to a department."""


class CaseAccepted(CaseEvent):
    """The department accepted the case (签收)."""


class CaseReturned(CaseEvent):
    """The department returned the case as not theirs (退回)."""


class ProgressNoted(CaseEvent):
    """Whoever handles the case added a note or photos."""


class CaseResolved(CaseEvent):
    """Whoever handles the case reported the result (办结)."""


class CaseRated(CaseEvent):
    """The reporter was satisfied; the case closed."""


class CaseReopened(CaseEvent):
    """The reporter was dissatisfied the first time; the same holder handles it again."""


class CaseEscalated(CaseEvent):
    """The reporter was dissatisfied again; the supervisors decide."""


class CaseClosed(CaseEvent):
    """A supervisor closed the case, with a reason."""


class CaseClosedUnrated(CaseEvent):
    """Nobody rated the resolved case in time; the system closed it."""


class CaseSupervised(CaseEvent):
    """A supervisor gave an instruction (督办意见) on an open case."""


@dataclass(frozen=True)
class ReminderDue(Event):
    """A reminder or supervision threshold of a case's stage passed; recorded, sent once."""

    case_number: str
    threshold: str  # before | at | overdue:N | supervise:1 | supervise:2
    audience: str  # holder | supervisors | superior
    level: int  # supervision level, 0 for the holder's reminders
    state: State
    stage_due_at: datetime
    due_at: datetime  # when the threshold fell (a late sweep still says when)

    @property
    def overdue(self) -> bool:
        return self.threshold != "before"
