"""Time limits on China's working-day calendar (holidays and make-up working days included)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from workflow.clock import SHANGHAI
from workflow.errors import InvalidLimit

log = logging.getLogger(__name__)

_LIMIT_RE = re.compile(r"^\s*(\d+)\s*(m|h|wd|d)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "wd": "working_days", "d": "days"}


@dataclass(frozen=True)
class Limit:
    """A time limit: wall-clock minutes/hours/days, or working days on the official calendar."""

    amount: int
    unit: str  # minutes | hours | days | working_days

    @classmethod
    def parse(cls, text: str) -> Limit:
        match = _LIMIT_RE.match(str(text))
        if not match or int(match.group(1)) <= 0:
            raise InvalidLimit(
                message=f"invalid time limit {text!r}: expected e.g. 30m, 2h, 3d or 7wd",
                value=str(text),
            )
        return cls(int(match.group(1)), _UNITS[match.group(2)])

    def __str__(self) -> str:
        suffix = {v: k for k, v in _UNITS.items()}[self.unit]
        return f"{self.amount}{suffix}"

    @property
    def is_working_days(self) -> bool:
        return self.unit == "working_days"


@dataclass(frozen=True)
class Deadline:
    at: datetime
    provisional: bool = False


@dataclass
class WorkCalendar:
    """Official schedule: which years are known, their holidays and their make-up working days."""

    known_years: set[int] = field(default_factory=set)
    holidays: set[date] = field(default_factory=set)
    workdays: set[date] = field(default_factory=set)
    _warned: set[int] = field(default_factory=set, repr=False)

    def has_year(self, year: int) -> bool:
        return year in self.known_years

    def is_workday(self, day: date) -> bool:
        if day.year in self.known_years:
            if day in self.holidays:
                return False
            if day in self.workdays:
                return True
        elif day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "no official calendar for %s: falling back to Monday-Friday; "
                "load it with `shuoshi calendar load`",
                day.year,
            )
        return day.weekday() < 5

    def load_year(self, year: int, holidays: Iterable[date], workdays: Iterable[date]) -> None:
        self.known_years.add(year)
        self.holidays = {d for d in self.holidays if d.year != year} | set(holidays)
        self.workdays = {d for d in self.workdays if d.year != year} | set(workdays)
        self._warned.discard(year)


def add_working_days(start: datetime, days: int, calendar: WorkCalendar) -> Deadline:
    """23:59:59 Shanghai time on the Nth working day after the intake day (which never counts)."""
    if start.tzinfo is None:
        raise ValueError("deadline start must be timezone-aware")
    day = start.astimezone(SHANGHAI).date()
    provisional = False
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if not calendar.has_year(day.year):
            provisional = True
        if calendar.is_workday(day):
            counted += 1
    end = datetime.combine(day, time(23, 59, 59), tzinfo=SHANGHAI)
    return Deadline(at=end, provisional=provisional)


def deadline(start: datetime, limit: Limit, calendar: WorkCalendar) -> Deadline:
    """When a limit that starts at `start` runs out."""
    if limit.unit == "working_days":
        return add_working_days(start, limit.amount, calendar)
    delta = {
        "minutes": timedelta(minutes=limit.amount),
        "hours": timedelta(hours=limit.amount),
        "days": timedelta(days=limit.amount),
    }[limit.unit]
    return Deadline(at=start + delta, provisional=False)
