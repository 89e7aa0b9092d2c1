"""Typed domain errors: a stable code for templates plus a readable English reason for logs."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base of every refusal the domain can give; nothing has been written when it is raised."""

    code = "workflow_error"

    def __init__(self, code: str | None = None, message: str = "", **params: Any) -> None:
        self.code = code or type(self).code
        self.params = params
        self.message = message or self.code.replace("_", " ")
        super().__init__(self.message)


class IllegalTransition(WorkflowError):
    """The event does not exist from the case's current state."""

    code = "illegal_transition"


class NotPermitted(WorkflowError):
    """The actor's role or scope does not allow the event on this case."""

    code = "not_permitted"


class GuardFailed(WorkflowError):
    """A precondition of the event is not met (missing reason, unknown department...)."""

    code = "guard_failed"


class NotFound(WorkflowError):
    """A case, person, grid, category or department that does not exist."""

    code = "not_found"


class ConcurrentUpdate(WorkflowError):
    """Someone else changed the case first; the caller should reload and retry."""

    code = "concurrent_update"


class InvalidLimit(WorkflowError):
    """A configured time limit that cannot be parsed."""

    code = "invalid_limit"
