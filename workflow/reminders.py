"""Reminder and escalation thresholds of a case's current stage, computed from its deadlines.

Pure functions: the sweeper asks which thresholds have passed, records each one once per case,
stage and threshold, and sends what is new. Nothing here reads a clock or a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from workflow.clock import SHANGHAI
from workflow.deadlines import Limit, WorkCalendar
from workflow.model import Case, State
from workflow.policy import ReminderPolicy, WorkflowPolicy
from workflow.states import REMINDED_STATES

# A case overdue for longer than this many working days still gets a daily reminder, but the
# sweeper stops generating the backlog of missed ones beyond it (downtime catch-up).
MAX_OVERDUE_DAYS = 400


class Audience(StrEnum):
    HOLDER = "holder"  # whoever holds the case now
    SUPERVISORS = "supervisors"  # 督办: the supervisors' chat
    SUPERIOR = "superior"  # second level: the holder's superior unit
    SYSTEM = "system"  # the sweeper acts itself (closing an unrated case)


@dataclass(frozen=True)
class Threshold:
    """One moment in a stage at which someone must hear of the case (or the system acts)."""

    name: str  # before | at | overdue:N | supervise:1 | supervise:2 | close
    at: datetime
    audience: Audience

    @property
    def level(self) -> int:
        """Supervision level (1, 2), 0 for holder reminders."""
        return int(self.name.split(":")[1]) if self.name.startswith("supervise:") else 0


def stage_key(case: Case) -> str:
    """The state and when the case entered it: a case back in a state is a new stage."""
    entered = (case.stage_entered_at or case.created_at).astimezone(UTC)
    return f"{case.state.value}@{entered:%Y%m%dT%H%M%S}"


def thresholds(
    case: Case, policy: WorkflowPolicy, calendar: WorkCalendar, until: datetime
) -> list[Threshold]:
    """Every threshold of the current stage up to `until`, plus the first one after it."""
    deadline = case.stage_due_at
    if deadline is None:
        return []
    if case.state is State.RESOLVED:
        return [Threshold("close", deadline, Audience.SYSTEM)]
    if case.state not in REMINDED_STATES:
        return []
    rules = policy.reminders[case.deadline_class]
    morning = policy.working_morning
    entered = case.stage_entered_at or case.created_at
    found: list[Threshold] = []
    before = _before(deadline, rules.before, calendar, morning)
    if entered < before < deadline:
        found.append(Threshold("before", before, Audience.HOLDER))
    found.append(Threshold("at", deadline, Audience.HOLDER))
    found.append(Threshold("supervise:1", deadline, Audience.SUPERVISORS))
    second = _after(deadline, rules.second_level_after, calendar, morning)
    found.append(Threshold("supervise:2", second, Audience.SUPERIOR))
    day = deadline.astimezone(SHANGHAI).date()
    for n in range(1, MAX_OVERDUE_DAYS + 1):
        day = _next_workday(day, calendar)
        at = datetime.combine(day, morning, tzinfo=SHANGHAI)
        found.append(Threshold(f"overdue:{n}", at, Audience.HOLDER))
        if at > until:
            break
    found.sort(key=lambda t: t.at)
    # Keep everything due by `until` and the single next one, so the caller knows when to look.
    due = [t for t in found if t.at <= until]
    later = [t for t in found if t.at > until]
    return due + later[:1]


def first_reminder_at(
    case: Case, policy: WorkflowPolicy, calendar: WorkCalendar
) -> datetime | None:
    """When the sweeper should first look at the case's current stage."""
    found = thresholds(case, policy, calendar, until=case.stage_entered_at or case.created_at)
    return min((t.at for t in found), default=None)


def due_and_next(
    case: Case, policy: WorkflowPolicy, calendar: WorkCalendar, now: datetime
) -> tuple[list[Threshold], datetime | None]:
    """Thresholds passed by `now` (recorded or not) and when the next one falls."""
    found = thresholds(case, policy, calendar, until=now)
    due = [t for t in found if t.at <= now]
    later = [t.at for t in found if t.at > now]
    return due, (min(later) if later else None)


def to_send(new: list[Threshold]) -> list[Threshold]:
    """Of the thresholds newly recorded in one sweep, what people should hear.

    After downtime several holder thresholds may have passed at once: the holder gets only the
    latest (a "due soon" after the deadline is noise). Each supervision level has its own
    audience, so each is sent.
    """
    holder = [t for t in new if t.audience is Audience.HOLDER]
    others = [t for t in new if t.audience is not Audience.HOLDER]
    latest = [max(holder, key=lambda t: t.at)] if holder else []
    return sorted(latest + others, key=lambda t: (t.at, t.level))


def _before(at: datetime, limit: Limit, calendar: WorkCalendar, morning: time) -> datetime:
    """`limit` before `at`; N working days before = the morning of the Nth-last working day."""
    if not limit.is_working_days:
        return at - _delta(limit)
    local = at.astimezone(SHANGHAI)
    day = local.date()
    if not (calendar.is_workday(day) and local.time() > morning):
        day = _previous_workday(day, calendar)
    for _ in range(limit.amount - 1):
        day = _previous_workday(day, calendar)
    return datetime.combine(day, morning, tzinfo=SHANGHAI)


def _after(at: datetime, limit: Limit, calendar: WorkCalendar, morning: time) -> datetime:
    """`limit` after `at`; N working days after = the morning of the Nth next working day."""
    if not limit.is_working_days:
        return at + _delta(limit)
    day = at.astimezone(SHANGHAI).date()
    for _ in range(limit.amount):
        day = _next_workday(day, calendar)
    return datetime.combine(day, morning, tzinfo=SHANGHAI)


def _delta(limit: Limit) -> timedelta:
    return timedelta(**{limit.unit: limit.amount})


def _next_workday(day: date, calendar: WorkCalendar) -> date:
    day += timedelta(days=1)
    while not calendar.is_workday(day):
        day += timedelta(days=1)
    return day


def _previous_workday(day: date, calendar: WorkCalendar) -> date:
    day -= timedelta(days=1)
    while not calendar.is_workday(day):
        day -= timedelta(days=1)
    return day


__all__ = [
    "REMINDED_STATES",
    "Audience",
    "ReminderPolicy",
    "Threshold",
    "due_and_next",
    "first_reminder_at",
    "stage_key",
    "thresholds",
    "to_send",
]
