"""Commands: what someone asks the workflow to do, named as imperatives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from workflow.model import Action, Rating, Role


@dataclass(frozen=True)
class ActorRef:
    """Who is asking, and in which of their roles."""

    person_id: int | None
    role: Role


@dataclass(frozen=True, kw_only=True)
class SubmitCase:
    actor: ActorRef
    grid_code: str
    category_code: str
    description: str
    attachment_ids: tuple[int, ...] = ()
    location_text: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    anonymous: bool = False
    contact_phone: str | None = None


@dataclass(frozen=True, kw_only=True)
class CaseCommand:
    """An event fired on an existing case."""

    action: ClassVar[Action]
    case_number: str
    actor: ActorRef
    attachment_ids: tuple[int, ...] = ()

    def params(self) -> dict[str, Any]:
        return {"attachment_ids": self.attachment_ids} if self.attachment_ids else {}


@dataclass(frozen=True, kw_only=True)
class ValidateCase(CaseCommand):
    action = Action.SCREEN_VALID


@dataclass(frozen=True, kw_only=True)
class RejectCase(CaseCommand):
    action = Action.SCREEN_INVALID
    reason: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class MarkDuplicate(CaseCommand):
    action = Action.MARK_DUPLICATE
    duplicate_of: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "duplicate_of": self.duplicate_of.strip().upper()}


@dataclass(frozen=True, kw_only=True)
class ReclassifyCase(CaseCommand):
    action = Action.RECLASSIFY
    category_code: str


@dataclass(frozen=True, kw_only=True)
class HandleLocally(CaseCommand):
    action = Action.HANDLE_LOCALLY


@dataclass(frozen=True, kw_only=True)
class PassUp(CaseCommand):
    action = Action.PASS_UP
    comment: str | None = None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "comment": self.comment}


@dataclass(frozen=True, kw_only=True)
class AssignCase(CaseCommand):
    action = Action.ASSIGN
    department_code: str
    comment: str | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptCase(CaseCommand):
    action = Action.ACCEPT


@dataclass(frozen=True, kw_only=True)
class ReturnCase(CaseCommand):
    action = Action.RETURN
    reason: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class AddProgressNote(CaseCommand):
    action = Action.NOTE
    text: str = ""

    def params(self) -> dict[str, Any]:
        return {**super().params(), "text": self.text}


@dataclass(frozen=True, kw_only=True)
class ResolveCase(CaseCommand):
    action = Action.RESOLVE
    text: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "text": self.text}


@dataclass(frozen=True, kw_only=True)
class RateCase(CaseCommand):
    action = Action.RATE
    rating: Rating | str | None
    comment: str | None = None

    def params(self) -> dict[str, Any]:
        rating: Rating | None
        try:
            rating = Rating(self.rating) if self.rating is not None else None
        except ValueError:
            rating = None
        return {**super().params(), "rating": rating, "comment": self.comment}


@dataclass(frozen=True, kw_only=True)
class CloseCase(CaseCommand):
    action = Action.CLOSE
    reason: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class CloseUnrated(CaseCommand):
    action = Action.CLOSE_UNRATED


@dataclass(frozen=True, kw_only=True)
class SuperviseCase(CaseCommand):
    action = Action.SUPERVISE
    instruction: str

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reason": self.instruction}
