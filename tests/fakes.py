"""In-memory fakes of the workflow's ports, for fast unit tests of the domain."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from workflow.cards import CaseCard
from workflow.clock import SHANGHAI, ManualClock
from workflow.deadlines import WorkCalendar
from workflow.errors import ConcurrentUpdate, NotFound, NotPermitted
from workflow.model import Actor, Case, DeadlineClass, Role, TrailEntry
from workflow.ports import CategoryInfo, DepartmentInfo, GridPlace, OutgoingMessage
from workflow.states import is_open


@dataclass
class FakeOrg:
    """Two townships (10, 20), villages 11/21, grids 111/112 and 211; departments 1 and 2."""

    grids: dict[str, GridPlace] = field(
        default_factory=lambda: {
            "G111": GridPlace(111, 11, 10),
            "G112": GridPlace(112, 11, 10),
            "G211": GridPlace(211, 21, 20),
        }
    )
    category_infos: dict[str, CategoryInfo] = field(
        default_factory=lambda: {
            "safety": CategoryInfo(1, "safety", DeadlineClass.GENERAL),
            "livelihood": CategoryInfo(2, "livelihood", DeadlineClass.LIVELIHOOD),
            "emergency": CategoryInfo(3, "emergency", DeadlineClass.EMERGENCY),
        }
    )
    departments: dict[str, DepartmentInfo] = field(
        default_factory=lambda: {
            "water": DepartmentInfo(1, "water"),
            "city": DepartmentInfo(2, "city"),
        }
    )
    actors: dict[tuple[int, Role], Actor] = field(default_factory=dict)

    def enrol(self, actor: Actor) -> Actor:
        assert actor.person_id is not None
        self.actors[(actor.person_id, actor.role)] = actor
        return actor

    async def actor(self, person_id: int, role: Role) -> Actor:
        if (person_id, role) not in self.actors:
            raise NotPermitted("role_not_held", f"{person_id} is no {role}")
        return self.actors[(person_id, role)]

    async def grid_place(self, grid_code: str) -> GridPlace:
        if grid_code not in self.grids:
            raise NotFound("unknown_grid", grid_code)
        return self.grids[grid_code]

    async def category(self, code: str) -> CategoryInfo:
        if code not in self.category_infos:
            raise NotFound("unknown_category", code)
        return self.category_infos[code]

    async def department(self, code: str) -> DepartmentInfo:
        if code not in self.departments:
            raise NotFound("unknown_department", code)
        return self.departments[code]

    async def categories(self) -> list[dict[str, str]]:
        return [
            {"code": c, "name_zh": c, "name_en": c, "deadline_class": i.deadline_class.value}
            for c, i in self.category_infos.items()
        ]

    async def case_prefix(self) -> str:
        return "JL"


class FakeCaseRepository:
    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.trails: dict[str, list[TrailEntry]] = {}
        self.counters: dict[tuple[str, date], int] = {}

    async def get(self, number: str) -> Case:
        if number not in self.cases:
            raise NotFound("unknown_case", number)
        return copy.deepcopy(self.cases[number])

    async def add(self, case: Case) -> None:
        case.id = len(self.cases) + 1
        case.version = 1
        self.trails[case.number] = list(case.new_entries)
        case.new_entries.clear()
        self.cases[case.number] = copy.deepcopy(case)

    async def save(self, case: Case) -> None:
        stored = self.cases[case.number]
        if stored.version != case.version:
            raise ConcurrentUpdate(message="stale")
        case.version += 1
        self.trails[case.number].extend(case.new_entries)
        case.new_entries.clear()
        self.cases[case.number] = copy.deepcopy(case)

    async def next_number(self, prefix: str, day: date) -> str:
        key = (prefix, day)
        self.counters[key] = self.counters.get(key, 0) + 1
        return f"{prefix}-{day:%Y%m%d}-{self.counters[key]:04d}"

    async def open_cases(self) -> list[Case]:
        return [copy.deepcopy(c) for c in self.cases.values() if is_open(c.state)]

    async def history(self, number: str) -> list[TrailEntry]:
        return list(self.trails[number])


class FakeCalendarStore:
    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar

    async def load(self) -> WorkCalendar:
        return self.calendar


class FakeOutbox:
    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    async def add(self, message: OutgoingMessage) -> None:
        self.messages.append(message)


class FakeUnitOfWork:
    """Commits by copying staged state into the shared stores; rollback drops it."""

    def __init__(
        self, org: FakeOrg, clock: ManualClock, calendar: WorkCalendar, cases: FakeCaseRepository
    ) -> None:
        self.org = org
        self.clock = clock
        self.calendar = FakeCalendarStore(calendar)
        self._shared = cases
        self.outbox = FakeOutbox()
        self.committed = False

    async def __aenter__(self) -> FakeUnitOfWork:
        self.cases = copy.deepcopy(self._shared)
        self.staged_outbox = FakeOutbox()
        self.outbox = self.staged_outbox
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cases = self._shared

    async def commit(self) -> None:
        self._shared.__dict__.update(copy.deepcopy(self.cases.__dict__))
        self.committed = True

    async def rollback(self) -> None:
        self.cases = copy.deepcopy(self._shared)


def calendar_2026() -> WorkCalendar:
    """The real official calendar as chinesecalendar ships it (same source as the DB seed)."""
    from storage.calendar import chinesecalendar_schedules

    cal = WorkCalendar()
    for schedule in chinesecalendar_schedules():
        cal.load_year(schedule.year, schedule.holidays, schedule.workdays)
    return cal


def fake_card(number: str = "JL-1", **fields: Any) -> CaseCard:
    """A whole case card (a general case held by the county), with `fields` changed."""
    card = CaseCard(
        number=number, state="county", category={"name": "安全隐患", "name_en": "Safety"},
        deadline_class="general", grid={"name": "网格一", "name_en": "Grid 1"},
        village={"name": "村", "name_en": "Village"}, township={"name": "镇", "name_en": "Town"},
        grid_id=111, township_id=10, department_id=None, department={},
        handled_by_township=False, description="井盖坏了", location_text=None, latitude=None,
        longitude=None, anonymous=False, contact_phone=None, reporter_name=None, reporter_id=None,
        created_at=datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI), due_at=None, stage_due_at=None,
        due_provisional=False, report_photos=[], result_photos=[], result_text=None,
        last_comment=None, rating=None, proposed_departments=[],
    )  # fmt: skip
    return replace(card, **fields)
