"""The weekly analysis (周研判): its figures, its web page, its chat message and its CLI text."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from handlers.ports import UnitOfWork
from handlers.render import Renderer
from workflow.clock import SHANGHAI
from workflow.ports import Period, RankedItem, Setback, UnitRates

# Telegram refuses a message longer than 4,096 characters (UTF-16 code units); the raw HTML is
# measured, which is never shorter than what Telegram counts after parsing the tags.
MAX_MESSAGE = 4096
TOP = 5
_WEEK_RE = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)

LimitT = TypeVar("LimitT")


def message_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def fit(render: Callable[[LimitT], str], limits: Sequence[LimitT], fallback: str) -> str:
    """The first rendering, from the most generous limits down, that fits in one message."""
    for limit in limits:
        text = render(limit)
        if message_length(text) <= MAX_MESSAGE:
            return text
    return fallback


def parse_week(text: str) -> Period:
    """'2026-W47' (ISO week) -> that Monday-to-Sunday week; ValueError for anything else."""
    match = _WEEK_RE.match(text or "")
    if match is None:
        raise ValueError(f"not an ISO week: {text!r}")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        period = Period.week_of(monday)
        # Instants are compared in UTC: 0001-W01 starts before year 1 there, and 9999-W52
        # ends in year 10000, so such weeks cannot be asked about at all.
        period.start.astimezone(UTC), period.end.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"no such week: {text!r}") from None
    return period


def previous_week(now: datetime) -> Period:
    """The last complete Monday-to-Sunday week before `now` (Asia/Shanghai)."""
    return Period.week_of(now.astimezone(SHANGHAI).date() - timedelta(days=7))


def _active(rows: list[UnitRates]) -> list[UnitRates]:
    return [r for r in rows if r.cases or r.returned or r.reopened]


def _by_cases(rows: list[UnitRates]) -> list[UnitRates]:
    """Most cases first; ties keep the org file's order."""
    return sorted(rows, key=lambda r: -r.cases)


@dataclass(frozen=True)
class WeeklyReport:
    """Everything the weekly analysis shows, computed once for the page, the chat and the CLI."""

    period: Period
    as_of: datetime
    county: UnitRates
    departments: list[UnitRates]
    townships: list[UnitRates]
    top_categories: list[RankedItem]
    top_grids: list[RankedItem]
    setbacks: list[Setback]

    @property
    def week(self) -> str:
        return self.period.iso_week

    @property
    def first_day(self) -> date:
        return self.period.start.astimezone(SHANGHAI).date()

    @property
    def last_day(self) -> date:
        return (self.period.end - timedelta(seconds=1)).astimezone(SHANGHAI).date()

    @property
    def active_departments(self) -> list[UnitRates]:
        """Departments with anything to show this week, most cases first (the chat's rows)."""
        return _by_cases(_active(self.departments))

    @property
    def active_townships(self) -> list[UnitRates]:
        return _by_cases(_active(self.townships))


async def build_weekly(
    uow: UnitOfWork, period: Period, as_of: datetime, top: int = TOP
) -> WeeklyReport:
    """Read the week's figures through the unit of work's reports (storage/analytics/)."""
    reports = uow.reports
    return WeeklyReport(
        period=period,
        as_of=as_of,
        county=await reports.county_rates(period, as_of=as_of),
        departments=_by_cases(await reports.unit_rates("department", period, as_of=as_of)),
        townships=_by_cases(await reports.unit_rates("township", period, as_of=as_of)),
        top_categories=await reports.top_categories(period, top),
        top_grids=await reports.top_grids(period, top),
        setbacks=await reports.setbacks(period),
    )


def neighbour_weeks(period: Period, now: datetime) -> tuple[str | None, str | None]:
    """The ISO weeks before and after `period` that can be asked for; no next week once it
    would start after now, and none beyond the calendar's ends (see parse_week)."""
    monday = period.start.astimezone(SHANGHAI).date()

    def week(days: int) -> Period | None:
        try:
            return parse_week(Period.week_of(monday + timedelta(days=days)).iso_week)
        except (ValueError, OverflowError):
            return None

    before, after = week(-7), week(7)
    return (
        before.iso_week if before else None,
        after.iso_week if after and after.start <= now else None,
    )


def render_weekly_page(
    report: WeeklyReport, locale: str | None = None, *, now: datetime | None = None
) -> str:
    """A self-contained HTML page (inline CSS, no external resources). Served by the dashboard
    (`now` given) it links the previous and next weeks; a file written by the CLI does not."""
    weeks = neighbour_weeks(report.period, now) if now is not None else None
    return Renderer(locale).render("web/weekly.html.j2", report=report, weeks=weeks)


# (department/township rows, list items) from the most generous down to what always fits.
WEEKLY_LIMITS: tuple[tuple[int | None, int], ...] = (
    (None, 10), (20, 10), (12, 5), (8, 5), (5, 3), (3, 3), (0, 0),
)  # fmt: skip


def render_weekly_message(
    report: WeeklyReport, locale: str | None = None, url: str | None = None
) -> str:
    """The chat message (Telegram HTML), shortened to fit one message."""
    r = Renderer(locale)

    def render(limits: tuple[int | None, int]) -> str:
        rows, items = limits
        return r.macro("digest.html.j2", "weekly", report=report, rows=rows, items=items, url=url)

    fallback = r.macro("digest.html.j2", "weekly_too_long", report=report, url=url)
    return fit(render, WEEKLY_LIMITS, fallback)


def render_weekly_text(report: WeeklyReport, locale: str | None = None) -> str:
    """The plain-text summary `shuoshi report weekly` prints."""
    return Renderer(locale).macro("cli.j2", "weekly_summary", report=report)
