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
