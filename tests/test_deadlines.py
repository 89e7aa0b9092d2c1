"""Working-day deadlines on the official calendar, including the issue's worked examples."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import calendar_2026
from workflow.clock import SHANGHAI
from workflow.deadlines import Limit, WorkCalendar, add_working_days, deadline
from workflow.errors import InvalidLimit

CAL = calendar_2026()


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_national_day_two_working_days():
    due = add_working_days(sh(2026, 9, 30, 10, 0), 2, CAL)
    assert due.at.isoformat() == "2026-10-09T23:59:59+08:00"
    assert not due.provisional


def test_reported_on_a_holiday_counts_the_make_up_saturday():
    due = add_working_days(sh(2026, 10, 3, 15, 30), 7, CAL)
    assert due.at.isoformat() == "2026-10-15T23:59:59+08:00"
    assert CAL.is_workday(date(2026, 10, 10))  # a Saturday worked in exchange


def test_spring_festival_2026():
    # Friday before the festival: Saturday 14 Feb is a make-up working day, 15-23 Feb off.
    assert add_working_days(sh(2026, 2, 13, 18, 0), 2, CAL).at == sh(2026, 2, 24, 23, 59, 59)
    # Reported during the holiday: counting starts on 24 Feb and takes Saturday 28 Feb.
    assert add_working_days(sh(2026, 2, 16, 9, 0), 7, CAL).at == sh(2026, 3, 3, 23, 59, 59)


def test_intake_day_never_counts_even_at_midnight():
    assert add_working_days(sh(2026, 11, 23, 0, 0, 1), 1, CAL).at == sh(2026, 11, 24, 23, 59, 59)
    # 23:59 Friday: the first working day after is Monday.
    assert add_working_days(sh(2026, 11, 20, 23, 59), 1, CAL).at == sh(2026, 11, 23, 23, 59, 59)


def test_utc_input_is_judged_by_the_shanghai_date():
    # 2026-11-22 17:00 UTC is already Monday 23 Nov 01:00 in Shanghai.
    from datetime import UTC

    start = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    assert add_working_days(start, 1, CAL).at == sh(2026, 11, 24, 23, 59, 59)


def test_year_without_data_falls_back_and_is_provisional(caplog):
    cal = calendar_2026()
    with caplog.at_level(logging.WARNING, logger="workflow.deadlines"):
        due = add_working_days(sh(2026, 12, 30, 10, 0), 7, cal)
    # 31 Dec (2026 data), then 2027 Monday-Friday: 1, 4, 5, 6, 7, 8 Jan.
    assert due.at == sh(2027, 1, 8, 23, 59, 59)
    assert due.provisional
    assert "2027" in caplog.text and "Monday-Friday" in caplog.text
    # Within a known year nothing is provisional.
    assert not add_working_days(sh(2026, 12, 1, 10, 0), 7, cal).provisional


def test_loading_a_year_replaces_the_fallback():
    cal = calendar_2026()
    cal.load_year(2027, holidays=[date(2027, 1, 1)], workdays=[])
    due = add_working_days(sh(2026, 12, 31, 10, 0), 1, cal)
    assert due.at == sh(2027, 1, 4, 23, 59, 59) and not due.provisional


def test_wall_clock_limits():
    start = sh(2026, 10, 1, 23, 30)  # a holiday: hours run regardless
    assert deadline(start, Limit.parse("2h"), CAL).at == sh(2026, 10, 2, 1, 30)
    assert deadline(start, Limit.parse("30m"), CAL).at == sh(2026, 10, 2, 0, 0)
    assert deadline(start, Limit.parse("3d"), CAL).at == sh(2026, 10, 4, 23, 30)


@pytest.mark.parametrize("text", ["", "2", "h", "0h", "-1wd", "2x", "1.5h", "two hours"])
def test_bad_limits_are_refused(text):
    with pytest.raises(InvalidLimit) as info:
        Limit.parse(text)
    assert "expected" in str(info.value)


def test_limit_roundtrip():
    for text in ("15m", "2h", "3d", "7wd"):
        assert str(Limit.parse(text)) == text


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 1)),
    days=st.integers(min_value=1, max_value=15),
)
def test_deadline_is_the_nth_working_day_after_intake(start, days):
    aware = start.replace(tzinfo=SHANGHAI)
    due = add_working_days(aware, days, CAL)
    assert due.at.time().isoformat() == "23:59:59"
    assert CAL.is_workday(due.at.date())
    intake = aware.date()
    counted = sum(
        CAL.is_workday(intake + timedelta(days=i))
        for i in range(1, (due.at.date() - intake).days + 1)
    )
    assert counted == days


def test_plain_weekdays_without_any_data():
    empty = WorkCalendar()
    due = add_working_days(sh(2030, 1, 4, 9, 0), 1, empty)  # Friday
    assert due.at == sh(2030, 1, 7, 23, 59, 59) and due.provisional
