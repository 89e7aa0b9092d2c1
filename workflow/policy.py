"""What a deployment configures about the loop: the route, the time limits, the rating window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from workflow.deadlines import Limit
from workflow.errors import WorkflowError
from workflow.model import DeadlineClass, Level, State
from workflow.states import STAGE_STATES


def _limits(**kwargs: str) -> dict[str, Limit]:
    return {k: Limit.parse(v) for k, v in kwargs.items()}


def default_class_limits() -> dict[DeadlineClass, Limit]:
    return {
        DeadlineClass.EMERGENCY: Limit.parse("2h"),
        DeadlineClass.LIVELIHOOD: Limit.parse("2wd"),
        DeadlineClass.GENERAL: Limit.parse("7wd"),
    }


def default_stage_limits() -> dict[DeadlineClass, dict[str, Limit]]:
    return {
        DeadlineClass.EMERGENCY: _limits(
            screening="15m", township="15m", county="15m", returned="15m", acceptance="15m"
        ),
        DeadlineClass.LIVELIHOOD: _limits(
            screening="4h", township="4h", county="4h", returned="4h", acceptance="4h"
        ),
        DeadlineClass.GENERAL: _limits(
            screening="1wd", township="1wd", county="1wd", returned="1wd", acceptance="1wd"
        ),
    }


@dataclass(frozen=True)
class ReminderPolicy:
    """When the holder is reminded and supervision escalates, for one deadline class."""

    # Before the stage deadline; working days count back to the morning of the last ones.
    before: Limit
    # The second supervision level (the holder's superior unit) this long after the deadline.
    second_level_after: Limit


def default_reminder_policies() -> dict[DeadlineClass, ReminderPolicy]:
    return {
        DeadlineClass.EMERGENCY: ReminderPolicy(Limit.parse("30m"), Limit.parse("1h")),
        DeadlineClass.LIVELIHOOD: ReminderPolicy(Limit.parse("1wd"), Limit.parse("1wd")),
        DeadlineClass.GENERAL: ReminderPolicy(Limit.parse("1wd"), Limit.parse("1wd")),
    }


@dataclass
class WorkflowPolicy:
    """Route and limits; validated once at start so a bad setting never reaches a case."""

    route: tuple[Level, ...] = (Level.SCREENING, Level.TOWNSHIP, Level.COUNTY)
    emergency_route: tuple[Level, ...] | None = None
    class_limits: dict[DeadlineClass, Limit] = field(default_factory=default_class_limits)
    stage_limits: dict[DeadlineClass, dict[str, Limit]] = field(
        default_factory=default_stage_limits
    )
    close_unrated_after_days: int = 3
    reminders: dict[DeadlineClass, ReminderPolicy] = field(
        default_factory=default_reminder_policies
    )
    # Reminders counted in working days, and the daily overdue ones, go out at this local hour.
    working_morning: time = time(9, 0)

    def __post_init__(self) -> None:
        self.route = _levels(self.route)
        self.emergency_route = _levels(self.emergency_route) if self.emergency_route else None
        for route in (self.route, self.emergency_route):
            if route is not None:
                validate_route(route)
        if self.close_unrated_after_days < 1:
            raise WorkflowError("invalid_policy", "close_unrated_after_days must be at least 1")

    def route_for(self, deadline_class: DeadlineClass) -> tuple[Level, ...]:
        if deadline_class is DeadlineClass.EMERGENCY and self.emergency_route:
            return self.emergency_route
        return self.route

    def next_level(self, deadline_class: DeadlineClass, after: Level | None) -> Level:
        route = self.route_for(deadline_class)
        if after is None or after not in route:
            # From outside the route (e.g. a township stage skipped) go to the first level above.
            order = list(Level)
            candidates = [
                lvl for lvl in route if after is None or order.index(lvl) > order.index(after)
            ]
            return candidates[0]
        return route[route.index(after) + 1]

    def stage_limit(self, deadline_class: DeadlineClass, state: State) -> Limit | None:
        per_class = self.stage_limits.get(deadline_class, {})
        for stage, stage_state in STAGE_STATES.items():
            if stage_state is state and stage in per_class:
                return per_class[stage]
        return None


def _levels(route: tuple[Level | str, ...]) -> tuple[Level, ...]:
    try:
        return tuple(Level(x) for x in route)
    except ValueError:
        raise WorkflowError(
            "invalid_route",
            f"unknown level in route {list(route)}: use screening, township, county",
        ) from None


def validate_route(route: tuple[Level, ...]) -> None:
    """County must close the route (departments are assigned there); order must be kept."""
    order = list(Level)
    if not route or route[-1] is not Level.COUNTY:
        raise WorkflowError("invalid_route", "the route must end with 'county'")
    if len(set(route)) != len(route):
        raise WorkflowError("invalid_route", "a level appears twice in the route")
    if [order.index(x) for x in route] != sorted(order.index(x) for x in route):
        raise WorkflowError("invalid_route", "route levels must go screening, township, county")
