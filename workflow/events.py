"""Domain events, named in the past tense; handlers turn them into outgoing messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow.model import Action, Role, State


@dataclass(frozen=True)
class CaseEvent:
    """Something that happened to a case (CaseAssigned, CaseResolved, ...)."""

    name: str
    case_number: str
    action: Action
    from_state: State
    to_state: State
    actor_id: int | None
    actor_role: Role
    at: datetime
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReminderDue:
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
