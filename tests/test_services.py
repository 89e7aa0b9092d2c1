"""Service functions over fakes: the whole loop, rollbacks, numbering, deadlines."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.fakes import FakeCaseRepository, FakeOrg, FakeUnitOfWork, calendar_2026
from workflow.clock import SHANGHAI, ManualClock
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AddProgressNote,
    AssignCase,
    CloseUnrated,
    MarkDuplicate,
    PassUp,
    RateCase,
    ReclassifyCase,
    RejectCase,
    ResolveCase,
    ReturnCase,
    SubmitCase,
    SuperviseCase,
    ValidateCase,
)
from workflow.errors import GuardFailed, IllegalTransition, NotFound, NotPermitted
from workflow.model import Action, Actor, Role, State
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

RESIDENT = ActorRef(1, Role.RESIDENT)
LEADER = ActorRef(3, Role.GRID_LEADER)
TOWNSHIP = ActorRef(4, Role.TOWNSHIP_OPERATOR)
DISPATCHER = ActorRef(5, Role.COUNTY_DISPATCHER)
WATER = ActorRef(6, Role.DEPARTMENT_HANDLER)
CITY = ActorRef(16, Role.DEPARTMENT_HANDLER)
SUPERVISOR = ActorRef(7, Role.SUPERVISOR)
SYSTEM = ActorRef(None, Role.SYSTEM)


class World:
    def __init__(self, policy: WorkflowPolicy | None = None) -> None:
        self.clock = ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
        self.org = FakeOrg()
        g = frozenset({111, 112})
        self.org.enrol(Actor(1, Role.RESIDENT, grid_ids=frozenset({111})))
        self.org.enrol(Actor(2, Role.GRID_WORKER, grid_ids=frozenset({111})))
        self.org.enrol(Actor(3, Role.GRID_LEADER, grid_ids=g))
        self.org.enrol(Actor(4, Role.TOWNSHIP_OPERATOR, township_ids=frozenset({10})))
        self.org.enrol(Actor(5, Role.COUNTY_DISPATCHER))
        self.org.enrol(Actor(6, Role.DEPARTMENT_HANDLER, department_ids=frozenset({1})))
        self.org.enrol(Actor(16, Role.DEPARTMENT_HANDLER, department_ids=frozenset({2})))
        self.org.enrol(Actor(7, Role.SUPERVISOR))
        self.calendar = calendar_2026()
        self.store = FakeCaseRepository()
        self.wf = Workflow(policy or WorkflowPolicy())

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.org, self.clock, self.calendar, self.store)

    async def submit(self, category: str = "safety", who: ActorRef = RESIDENT, **kw) -> str:
        cmd = SubmitCase(
            actor=who, grid_code=kw.pop("grid", "G111"), category_code=category,
            description=kw.pop("description", "井盖破损"), **kw,
        )  # fmt: skip
        return await self.wf.submit(self.uow(), cmd)

    async def do(self, cmd) -> None:
        await self.wf.handle(self.uow(), cmd)

    async def resolve(self, n: str) -> None:
        """Take a freshly submitted case up the default route to resolved, by the water bureau."""
        for cmd in (
            ValidateCase(case_number=n, actor=LEADER),
            PassUp(case_number=n, actor=TOWNSHIP),
            AssignCase(case_number=n, actor=DISPATCHER, department_code="water"),
            AcceptCase(case_number=n, actor=WATER),
            ResolveCase(case_number=n, actor=WATER, text="已处理"),
        ):
            await self.do(cmd)

    def case(self, number: str):
        return self.store.cases[number]

    def trail(self, number: str):
        return self.store.trails[number]


async def test_whole_loop_with_every_step_in_the_trail():
    w = World()
    n = await w.submit(attachment_ids=(11, 12), contact_phone="13800000000")
    assert n == "JL-20261123-0001"
    assert w.case(n).state is State.SCREENING
    for cmd in (
        ValidateCase(case_number=n, actor=LEADER),
        PassUp(case_number=n, actor=TOWNSHIP),
        AssignCase(case_number=n, actor=DISPATCHER, department_code="water"),
        AcceptCase(case_number=n, actor=WATER),
        AddProgressNote(case_number=n, actor=WATER, text="明天上午更换"),
        ResolveCase(case_number=n, actor=WATER, text="已更换", attachment_ids=(13,)),
        RateCase(case_number=n, actor=RESIDENT, rating="satisfied"),
    ):
        w.clock.advance(hours=1)
        await w.do(cmd)
    case = w.case(n)
    assert case.state is State.CLOSED and case.rating.value == "satisfied"
    steps = [(e.action, e.from_state, e.to_state, e.actor_id) for e in w.trail(n)]
    assert steps == [
        (Action.SUBMIT, State.NEW, State.REPORTED, 1),
        (Action.ROUTE, State.REPORTED, State.SCREENING, None),
        (Action.SCREEN_VALID, State.SCREENING, State.TOWNSHIP, 3),
        (Action.PASS_UP, State.TOWNSHIP, State.COUNTY, 4),
        (Action.ASSIGN, State.COUNTY, State.ASSIGNED, 5),
        (Action.ACCEPT, State.ASSIGNED, State.IN_PROGRESS, 6),
        (Action.NOTE, State.IN_PROGRESS, State.IN_PROGRESS, 6),
        (Action.RESOLVE, State.IN_PROGRESS, State.RESOLVED, 6),
        (Action.RATE, State.RESOLVED, State.CLOSED, 1),
    ]
    assert w.trail(n)[0].attachment_ids == (11, 12)
    assert w.trail(n)[7].attachment_ids == (13,) and w.trail(n)[7].comment == "已更换"
    assert [e.at.second for e in w.trail(n)] == [0] * 9  # to the second
    assert case.first_response_at == w.trail(n)[5].at


async def test_refused_command_writes_nothing():
    w = World()
    n = await w.submit()
    before = (w.case(n), list(w.trail(n)))
    with pytest.raises(IllegalTransition):
        await w.do(AcceptCase(case_number=n, actor=WATER))
    with pytest.raises(NotPermitted):
        await w.do(ValidateCase(case_number=n, actor=ActorRef(5, Role.GRID_LEADER)))
    with pytest.raises(NotFound):
        await w.do(
            AssignCase(case_number="JL-20990101-0001", actor=DISPATCHER, department_code="x")
        )
    assert (w.case(n), list(w.trail(n))) == before


async def test_department_acts_only_on_its_own_cases():
    w = World()
    n = await w.submit()
    await w.do(ValidateCase(case_number=n, actor=LEADER))
    await w.do(PassUp(case_number=n, actor=TOWNSHIP))
    await w.do(AssignCase(case_number=n, actor=DISPATCHER, department_code="water"))
    with pytest.raises(NotPermitted) as info:
        await w.do(AcceptCase(case_number=n, actor=CITY))
    assert info.value.code == "not_your_case"


async def test_return_and_reassign():
    w = World()
    n = await w.submit()
    await w.do(ValidateCase(case_number=n, actor=LEADER))
    await w.do(PassUp(case_number=n, actor=TOWNSHIP))
    await w.do(AssignCase(case_number=n, actor=DISPATCHER, department_code="water"))
    with pytest.raises(GuardFailed):
        await w.do(ReturnCase(case_number=n, actor=WATER, reason=""))
    await w.do(ReturnCase(case_number=n, actor=WATER, reason="属城管职责"))
    assert w.case(n).state is State.RETURNED and w.case(n).department_id is None
    await w.do(AssignCase(case_number=n, actor=DISPATCHER, department_code="city"))
    await w.do(AcceptCase(case_number=n, actor=CITY))
    assert w.case(n).state is State.IN_PROGRESS and w.case(n).department_id == 2


async def test_duplicate_is_linked_both_ways():
    w = World()
    first = await w.submit()
    second = await w.submit()
    with pytest.raises(GuardFailed) as info:
        await w.do(MarkDuplicate(case_number=second, actor=LEADER, duplicate_of="JL-20261123-0099"))
    assert info.value.code == "duplicate_target_unknown"
    await w.do(MarkDuplicate(case_number=second, actor=LEADER, duplicate_of=first.lower()))
    assert w.case(second).state is State.DUPLICATE and w.case(second).duplicate_of == first
    link = w.trail(first)[-1]
    assert link.data == {"duplicate": second} and link.from_state == link.to_state
    third = await w.submit()
    with pytest.raises(GuardFailed) as info:
        await w.do(MarkDuplicate(case_number=third, actor=LEADER, duplicate_of=second))
    assert info.value.code == "duplicate_target_invalid"


async def test_reject_needs_a_reason_and_closes_the_case():
    w = World()
    n = await w.submit()
    await w.do(RejectCase(case_number=n, actor=LEADER, reason="非本辖区事项"))
    assert w.case(n).state is State.REJECTED and w.trail(n)[-1].comment == "非本辖区事项"


async def test_case_numbers_count_per_day_and_are_never_reused():
    w = World()
    a, b = await w.submit(), await w.submit()
    w.clock.advance(days=1)
    c = await w.submit()
    assert (a, b, c) == ("JL-20261123-0001", "JL-20261123-0002", "JL-20261124-0001")
    w.clock.advance(days=-1)
    assert await w.submit() == "JL-20261123-0003"


async def test_deadlines_follow_the_class_and_reclassification():
    w = World()
    n = await w.submit("safety")  # general: 7 working days
    assert w.case(n).due_at.isoformat() == "2026-12-02T23:59:59+08:00"
    assert w.case(n).stage_due_at.isoformat() == "2026-11-24T23:59:59+08:00"  # screening 1wd
    await w.do(ReclassifyCase(case_number=n, actor=LEADER, category_code="livelihood"))
    case = w.case(n)
    assert case.category_id == 2 and case.due_at.isoformat() == "2026-11-25T23:59:59+08:00"
    assert case.stage_due_at == w.clock.now() + timedelta(hours=4)
    e = await w.submit("emergency")
    assert w.case(e).due_at == w.clock.now() + timedelta(hours=2)
    assert w.case(e).stage_due_at == w.clock.now() + timedelta(minutes=15)


async def test_deadline_in_a_year_without_calendar_is_provisional_until_loaded():
    w = World()
    w.clock.set(datetime(2026, 12, 28, 10, 0, tzinfo=SHANGHAI))
    n = await w.submit()
    assert w.case(n).due_provisional
    assert w.case(n).due_at.isoformat() == "2027-01-06T23:59:59+08:00"
    from datetime import date

    # The official 2027 schedule arrives with 1 and 4 January off: the deadline moves.
    w.calendar.load_year(2027, holidays=[date(2027, 1, 1), date(2027, 1, 4)], workdays=[])
    assert await w.wf.recompute_deadlines(w.uow()) == 1
    assert not w.case(n).due_provisional
    assert w.case(n).due_at.isoformat() == "2027-01-08T23:59:59+08:00"


async def test_close_unrated_after_the_window_is_never_satisfied():
    w = World()
    n = await w.submit()
    await w.resolve(n)
    assert w.case(n).stage_due_at == w.clock.now() + timedelta(days=3)
    with pytest.raises(GuardFailed):
        await w.do(CloseUnrated(case_number=n, actor=SYSTEM))
    w.clock.advance(days=3)
    await w.do(CloseUnrated(case_number=n, actor=SYSTEM))
    assert w.case(n).state is State.CLOSED_UNRATED and w.case(n).rating is None


async def test_only_the_reporter_rates_and_supervision_is_recorded():
    w = World()
    n = await w.submit(who=ActorRef(2, Role.GRID_WORKER))
    await w.do(SuperviseCase(case_number=n, actor=SUPERVISOR, instruction="请尽快初筛"))
    assert w.case(n).supervise_count == 1 and w.case(n).state is State.SCREENING
    await w.resolve(n)
    with pytest.raises(NotPermitted):
        await w.do(RateCase(case_number=n, actor=RESIDENT, rating="satisfied"))
    await w.do(RateCase(case_number=n, actor=ActorRef(2, Role.GRID_WORKER), rating="satisfied"))
    assert w.case(n).state is State.CLOSED


async def test_unknown_person_role_grid_or_category_is_refused():
    w = World()
    with pytest.raises(NotPermitted) as info:
        await w.submit(who=ActorRef(3, Role.RESIDENT))
    assert info.value.code == "role_not_held"
    with pytest.raises(NotFound):
        await w.submit(grid="NOPE")
    with pytest.raises(NotFound):
        await w.submit("nope")
    with pytest.raises(NotPermitted):
        await w.submit(who=ActorRef(2, Role.GRID_WORKER), grid="G211")
    with pytest.raises(GuardFailed):
        await w.submit(description="  ")
    assert w.store.cases == {}
