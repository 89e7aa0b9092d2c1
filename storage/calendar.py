"""The official working-day calendar in the database: seeding, yearly schedule files, caching."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.org_cache import OrgCache, bump
from storage.org_file.yaml_nodes import FileLineError, compose
from storage.rows import CalendarDayRow, CalendarYearRow
from workflow.deadlines import WorkCalendar


class CalendarFileError(ValueError):
    """A schedule file that cannot be loaded; nothing was written."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")


@dataclass
class Schedule:
    """One year's official schedule: holidays and the weekend days that are worked (调休)."""

    year: int
    holidays: dict[date, str] = field(default_factory=dict)
    workdays: dict[date, str] = field(default_factory=dict)


class SqlCalendarStore:
    def __init__(self, session: AsyncSession, cache: OrgCache | None = None) -> None:
        self.session = session
        self.cache = cache  # the process's copy, reread when the "org" generation moves on

    async def load(self) -> WorkCalendar:
        if self.cache is None:
            return await read_calendar(self.session)
        return await self.cache.get(self.session, "calendar", lambda: read_calendar(self.session))


async def read_calendar(session: AsyncSession) -> WorkCalendar:
    years = (await session.execute(select(CalendarYearRow.year))).scalars().all()
    days = (await session.execute(select(CalendarDayRow.day, CalendarDayRow.is_workday))).all()
    return WorkCalendar(
        known_years=set(years),
        holidays={d for d, work in days if not work},
        workdays={d for d, work in days if work},
    )


def chinesecalendar_schedules() -> list[Schedule]:
    """Every year the chinesecalendar package knows, as schedules."""
    import chinese_calendar

    by_year: dict[int, Schedule] = {}
    for day, name in chinese_calendar.holidays.items():
        by_year.setdefault(day.year, Schedule(day.year)).holidays[day] = str(name)
    for day, name in chinese_calendar.workdays.items():
        if day.weekday() >= 5:  # only make-up days differ from Monday-Friday
            by_year.setdefault(day.year, Schedule(day.year)).workdays[day] = str(name)
    return [by_year[y] for y in sorted(by_year)]


async def seed_calendar(session: AsyncSession, now: datetime) -> int:
    """Fill an empty calendar from chinesecalendar; returns how many years were added."""
    if (await session.execute(select(func.count()).select_from(CalendarYearRow))).scalar_one():
        return 0
    import chinese_calendar

    source = f"chinesecalendar {getattr(chinese_calendar, '__version__', '')}".strip()
    schedules = chinesecalendar_schedules()
    for schedule in schedules:
        await store_schedule(session, schedule, source=source, now=now)
    return len(schedules)


async def store_schedule(
    session: AsyncSession, schedule: Schedule, *, source: str, now: datetime
) -> None:
    """Replace one year's exceptions; the caller commits (and recomputes open deadlines)."""
    year_start, year_end = date(schedule.year, 1, 1), date(schedule.year, 12, 31)
    await session.execute(
        delete(CalendarDayRow).where(CalendarDayRow.day.between(year_start, year_end))
    )
    rows: list[dict[str, Any]] = [
        {"day": d, "is_workday": False, "note": n[:100]} for d, n in schedule.holidays.items()
    ] + [{"day": d, "is_workday": True, "note": n[:100]} for d, n in schedule.workdays.items()]
    if rows:
        await session.execute(insert(CalendarDayRow), rows)
    await session.execute(delete(CalendarYearRow).where(CalendarYearRow.year == schedule.year))
    await session.execute(
        insert(CalendarYearRow).values(year=schedule.year, source=source[:200], loaded_at=now)
    )
    await bump(session)  # every process rereads the calendar at its next transaction


def parse_schedule(path: Path) -> Schedule:
    """Read a year's schedule file (YAML; see bot/examples/calendar-2026.yaml)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalendarFileError(path, "file not found") from None
    try:
        # Syntax first, reported at its line the way the county file's errors are.
        compose(text, path)
    except FileLineError as exc:
        raise CalendarFileError(path, exc.reason, exc.line) from None
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise CalendarFileError(path, "expected a mapping with year, holidays and workdays")
    unknown = set(doc) - {"year", "holidays", "workdays", "source"}
    if unknown:
        raise CalendarFileError(path, f"unknown key {sorted(unknown)[0]!r}")
    year = doc.get("year")
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        raise CalendarFileError(path, f"'year' must be a year like 2027, got {year!r}")
    schedule = Schedule(year)
    for key, target in (("holidays", schedule.holidays), ("workdays", schedule.workdays)):
        items = doc.get(key) or []
        if not isinstance(items, list):
            raise CalendarFileError(path, f"'{key}' must be a list")
        for item in items:
            name, days = _days(path, key, item)
            for day in days:
                if day.year != year:
                    raise CalendarFileError(path, f"{key}: {day} is not in {year}")
                target[day] = name
    both = set(schedule.holidays) & set(schedule.workdays)
    if both:
        raise CalendarFileError(path, f"{min(both)} is both a holiday and a working day")
    weekday_workdays = [d for d in schedule.workdays if d.weekday() < 5]
    if weekday_workdays:
        raise CalendarFileError(
            path, f"workdays lists {weekday_workdays[0]}, a weekday that is worked anyway"
        )
    return schedule


def _days(path: Path, key: str, item: Any) -> tuple[str, list[date]]:
    """An entry is a date, or {name, from, to} / {name, dates: [...]} for a named period."""
    if isinstance(item, date):
        return "", [item]
    if not isinstance(item, dict):
        raise CalendarFileError(path, f"{key}: cannot read entry {item!r}")
    name = str(item.get("name", ""))
    if "dates" in item:
        dates = item["dates"]
        if not isinstance(dates, list) or not all(isinstance(d, date) for d in dates):
            raise CalendarFileError(path, f"{key}: 'dates' of {name!r} must be a list of dates")
        return name, list(dates)
    start, end = item.get("from"), item.get("to", item.get("from"))
    if not isinstance(start, date) or not isinstance(end, date) or end < start:
        raise CalendarFileError(path, f"{key}: {name!r} needs 'from' and 'to' dates, from <= to")
    return name, [start + timedelta(days=i) for i in range((end - start).days + 1)]
