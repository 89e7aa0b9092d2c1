"""Guards: named predicates a transition needs to hold, each with the refusal it gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workflow.model import Actor, Case, Rating, Role
from workflow.policy import WorkflowPolicy


@dataclass(frozen=True)
class GuardContext:
    case: Case
    actor: Actor
    params: dict[str, Any]
    policy: WorkflowPolicy
    now: datetime


@dataclass(frozen=True)
class Guard:
    name: str
    check: Callable[[GuardContext], bool]
    error_code: str
    # Reads only the case and the actor (who holds it, how often it was reopened), nothing the
    # person is asked for: a button it refuses is refused at the press (machine.rows_open_to).
    case_only: bool = False

    def __call__(self, ctx: GuardContext) -> bool:
        return self.check(ctx)


def _text(ctx: GuardContext, key: str) -> str:
    value = ctx.params.get(key)
    return value.strip() if isinstance(value, str) else ""


has_reason = Guard("has_reason", lambda c: bool(_text(c, "reason")), "reason_required")
has_text = Guard("has_text", lambda c: bool(_text(c, "text")), "text_required")
has_text_or_photos = Guard(
    "has_text_or_photos",
    lambda c: bool(_text(c, "text")) or bool(c.params.get("attachment_ids")),
    "text_or_photo_required",
)
has_department = Guard(
    "has_department", lambda c: c.params.get("department_id") is not None, "department_required"
)
has_new_category = Guard(
    "has_new_category",
    lambda c: (
        c.params.get("category_id") is not None
        and c.params.get("category_id") != c.case.category_id
    ),
    "new_category_required",
)
has_duplicate_target = Guard(
    "has_duplicate_target",
    lambda c: bool(c.params.get("duplicate_of")) and c.params["duplicate_of"] != c.case.number,
    "duplicate_target_required",
)
has_rating = Guard(
    "has_rating", lambda c: isinstance(c.params.get("rating"), Rating), "rating_required"
)
rating_is_positive = Guard(
    "rating_is_positive",
    lambda c: c.params.get("rating") in (Rating.SATISFIED, Rating.BASICALLY_SATISFIED),
    "rating_required",
)
rating_is_negative = Guard(
    "rating_is_negative",
    lambda c: c.params.get("rating") is Rating.DISSATISFIED,
    "rating_required",
)
not_reopened_before = Guard(
    "not_reopened_before", lambda c: c.case.reopen_count == 0, "already_reopened", case_only=True
)
reopened_before = Guard(
    "reopened_before", lambda c: c.case.reopen_count > 0, "not_reopened", case_only=True
)
held_by_township = Guard(
    "held_by_township", lambda c: c.case.handled_by_township, "not_held_by_township",
    case_only=True,
)  # fmt: skip
held_by_department = Guard(
    "held_by_department", lambda c: not c.case.handled_by_township, "not_held_by_department",
    case_only=True,
)  # fmt: skip


def _actor_holds_case(ctx: GuardContext) -> bool:
    if ctx.actor.role is Role.TOWNSHIP_OPERATOR:
        return ctx.case.handled_by_township
    if ctx.actor.role is Role.DEPARTMENT_HANDLER:
        return not ctx.case.handled_by_township
    return False


actor_holds_case = Guard("actor_holds_case", _actor_holds_case, "not_holder", case_only=True)


def _rating_window_passed(ctx: GuardContext) -> bool:
    resolved = ctx.case.resolved_at
    window = timedelta(days=ctx.policy.close_unrated_after_days)
    return resolved is not None and ctx.now >= resolved + window


rating_window_passed = Guard("rating_window_passed", _rating_window_passed, "rating_window_open")
