"""The calendar table: seeded from chinesecalendar, replaced a year at a time from a file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from storage.calendar import (
    CalendarFileError,
    chinesecalendar_schedules,
    parse_schedule,
    read_calendar,
    seed_calendar,
    store_schedule,
)
from storage.db import session_factory

ROOT = Path(__file__).resolve().parent.parent


def test_the_example_schedule_is_the_official_2026_one():
    example = parse_schedule(ROOT / "bot" / "examples" / "calendar-2026.yaml")
    official = next(s for s in chinesecalendar_schedules() if s.year == 2026)
    assert set(example.holidays) == set(official.holidays)
    assert set(example.workdays) == set(official.workdays)


async def test_seed_store_and_read_back(engine, clock):
    sessions = session_factory(engine)
    async with sessions() as session:
        assert await seed_calendar(session, clock.now()) >= 20
        assert await seed_calendar(session, clock.now()) == 0  # only into an empty table
        await session.commit()
        calendar = await read_calendar(session)
    assert calendar.has_year(2026) and not calendar.has_year(2027)
    assert not calendar.is_workday(date(2026, 2, 16)) and calendar.is_workday(date(2026, 2, 14))
    schedule = parse_schedule(ROOT / "bot" / "examples" / "calendar-2026.yaml")
    schedule.year = 2027  # pretend: the same dates shifted are not needed, only replacement
    schedule.holidays = {date(2027, 1, 1): "元旦"}
    schedule.workdays = {date(2027, 1, 2): "调休"}
    async with sessions() as session:
        await store_schedule(session, schedule, source="test", now=clock.now())
        await store_schedule(session, schedule, source="test again", now=clock.now())
        await session.commit()
        calendar = await read_calendar(session)
    assert calendar.has_year(2027)
    assert not calendar.is_workday(date(2027, 1, 1)) and calendar.is_workday(date(2027, 1, 2))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("year: 27\n", "'year' must be a year"),
        ("year: 2027\nholiday: []\n", "unknown key 'holiday'"),
        ("year: 2027\nholidays: [2026-10-01]\n", "not in 2027"),
        ("year: 2027\nholidays: [2027-10-01]\nworkdays: [2027-10-01]\n", "both a holiday"),
        ("year: 2027\nworkdays: [2027-01-05]\n", "a weekday"),
        ("year: 2027\nholidays: [{name: x, from: 2027-10-07, to: 2027-10-01}]\n", "from <= to"),
        ("year: [2027\n", ":2: YAML syntax error"),
        ("- 2027\n", "expected a mapping"),
    ],
)
def test_bad_schedule_files(tmp_path, text, reason):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarFileError) as info:
        parse_schedule(path)
    assert reason in str(info.value) and str(path) in str(info.value)
