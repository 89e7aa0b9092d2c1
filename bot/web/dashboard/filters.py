"""The dashboard's filter bar: query parameters in, one checked CaseFilter out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from storage.dashboard.filters import CaseFilter, OrgOptions, Unit
from workflow.clock import SHANGHAI
from workflow.model import State

PRESETS = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PRESET = "30d"
MAX_DAYS = 366  # a year at most: longer periods are the weekly and yearly reports' business
STATES = tuple(s.value for s in State if s is not State.NEW)
# Parameters the filter bar owns; sort and page parameters travel separately.
FILTER_KEYS = ("period", "from", "to", "township", "department", "category", "state")


class FilterError(Exception):
    """A filter value that cannot be used; `code` names the message macro, `value` what was sent."""

    def __init__(self, code: str, value: str) -> None:
        super().__init__(f"{code}: {value}")
        self.code = code
        self.value = value


@dataclass(frozen=True)
class Chosen:
    """The checked filter, what the form shows selected, and the query string that repeats it."""

    filter: CaseFilter
    preset: str  # 7d | 30d | 90d | custom
    first_day: date
    last_day: date
    township: Unit | None
    department: Unit | None
    category: Unit | None
    state: str | None

    def params(self) -> dict[str, str]:
        """Only what differs from the defaults, so links stay short and readable."""
        found: dict[str, str] = {}
        if self.preset == "custom":
            found["from"] = self.first_day.isoformat()
            found["to"] = self.last_day.isoformat()
        elif self.preset != DEFAULT_PRESET:
            found["period"] = self.preset
        for key, unit in (
            ("township", self.township),
            ("department", self.department),
            ("category", self.category),
        ):
            if unit is not None:
                found[key] = unit.code
        if self.state:
            found["state"] = self.state
        return found

    def query(self, **extra: str | int | None) -> str:
        """`?…` for a link that keeps the filter, plus extra parameters (e.g. a page)."""
        params = {**self.params(), **{k: str(v) for k, v in extra.items() if v is not None}}
        return "?" + urlencode(params) if params else ""


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def parse_filter(query: Mapping[str, str], options: OrgOptions, now: datetime) -> Chosen:
    """Check every parameter; periods are whole local days, so a filter is stable for a day (and
    a cache keyed by it is useful)."""
    today = now.astimezone(SHANGHAI).date()
    first_text, last_text = query.get("from", "").strip(), query.get("to", "").strip()
    if first_text or last_text:
        preset = "custom"
        first = _day(first_text or last_text)
        last = _day(last_text or first_text)
        if last < first:
            raise FilterError("period_reversed", f"{first_text} > {last_text}")
        if (last - first).days + 1 > MAX_DAYS:
            raise FilterError("period_too_long", f"{first_text} – {last_text}")
    else:
        preset = query.get("period", DEFAULT_PRESET).strip() or DEFAULT_PRESET
        if preset not in PRESETS:
            raise FilterError("bad_period", preset)
        last = today
        first = today - timedelta(days=PRESETS[preset] - 1)
    township = _unit(query, "township", options.townships)
    department = _unit(query, "department", options.departments)
    category = _unit(query, "category", options.categories)
    state = query.get("state", "").strip() or None
    if state is not None and state not in STATES:
        raise FilterError("bad_state", state)
    case_filter = CaseFilter(
        start=local_midnight(first),
        end=local_midnight(last + timedelta(days=1)),
        township_id=township.id if township else None,
        department_id=department.id if department else None,
        category_id=category.id if category else None,
        state=state,
    )
    return Chosen(case_filter, preset, first, last, township, department, category, state)


def parse_page(query: Mapping[str, str]) -> int:
    """1-based page number; nonsense is refused rather than silently shown as page 1."""
    text = query.get("page", "1").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise FilterError("bad_page", text)
    return int(text)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError("bad_date", text) from None


def _unit(query: Mapping[str, str], key: str, units: list[Unit]) -> Unit | None:
    code = query.get(key, "").strip()
    if not code:
        return None
    for unit in units:
        if unit.code == code:
            return unit
    raise FilterError(f"unknown_{key}", code)
