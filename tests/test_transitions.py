"""Every transition of the table, every illegal one, and the authorization matrix."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest

from tests.fakes import calendar_2026
from workflow.clock import SHANGHAI
from workflow.errors import GuardFailed, IllegalTransition, NotPermitted
from workflow.events import CaseEscalated, CaseReopened
from workflow.machine import fire
from workflow.model import Action, Actor, Case, DeadlineClass, Rating, Role, State
from workflow.policy import WorkflowPolicy
from workflow.table import TRANSITIONS

A, R, S = Action, Role, State
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
CAL = calendar_2026()
POLICY = WorkflowPolicy()
OPEN = [s for s in State if s not in (S.NEW, S.CLOSED, S.CLOSED_UNRATED, S.REJECTED, S.DUPLICATE)]

# The matrix as the issue states it, written out by hand (independent of workflow/table.py).
SCREENERS = {
    S.SCREENING: {R.GRID_LEADER},
    S.TOWNSHIP: {R.TOWNSHIP_OPERATOR},
    S.COUNTY: {R.COUNTY_DISPATCHER},
    S.RETURNED: {R.COUNTY_DISPATCHER},
}
EXPECTED: dict[tuple[Action, State], set[Role]] = {
    (A.SUBMIT, S.NEW): {R.RESIDENT, R.GRID_WORKER, R.TOWNSHIP_OPERATOR, R.COUNTY_DISPATCHER},
    (A.ROUTE, S.REPORTED): {R.SYSTEM},
    (A.SCREEN_VALID, S.SCREENING): {R.GRID_LEADER},
    **{(A.SCREEN_INVALID, s): roles for s, roles in SCREENERS.items()},
    **{(A.MARK_DUPLICATE, s): roles for s, roles in SCREENERS.items()},
    **{(A.RECLASSIFY, s): roles for s, roles in SCREENERS.items()},
    (A.HANDLE_LOCALLY, S.TOWNSHIP): {R.TOWNSHIP_OPERATOR},
    (A.PASS_UP, S.TOWNSHIP): {R.TOWNSHIP_OPERATOR},
    (A.PASS_UP, S.IN_PROGRESS): {R.TOWNSHIP_OPERATOR},
    (A.ASSIGN, S.COUNTY): {R.COUNTY_DISPATCHER},
    (A.ASSIGN, S.RETURNED): {R.COUNTY_DISPATCHER},
    (A.ASSIGN, S.SUPERVISION): {R.SUPERVISOR},
    (A.ACCEPT, S.ASSIGNED): {R.DEPARTMENT_HANDLER},
    (A.RETURN, S.ASSIGNED): {R.DEPARTMENT_HANDLER},
    (A.RETURN, S.IN_PROGRESS): {R.DEPARTMENT_HANDLER},
    (A.NOTE, S.IN_PROGRESS): {R.DEPARTMENT_HANDLER, R.TOWNSHIP_OPERATOR},
    (A.RESOLVE, S.IN_PROGRESS): {R.DEPARTMENT_HANDLER, R.TOWNSHIP_OPERATOR},
    (A.RATE, S.RESOLVED): {R.RESIDENT, R.GRID_WORKER},
    (A.CLOSE, S.SUPERVISION): {R.SUPERVISOR},
    (A.CLOSE_UNRATED, S.RESOLVED): {R.SYSTEM},
    **{(A.SUPERVISE, s): {R.SUPERVISOR} for s in OPEN},
}  # fmt: skip
COUNTY_WIDE = {R.COUNTY_DISPATCHER, R.SUPERVISOR, R.SYSTEM, R.ADMIN}

# Person ids: "own" actors serve grid 111 / township 10 / department 1; "other" actors do not.
OWN_PERSON = {role: i for i, role in enumerate(Role, start=1)}


def actor(role: Role) -> Actor:
    if role is R.SYSTEM:
        return Actor.system()
    return Actor(
        person_id=OWN_PERSON[role],
        role=role,
        grid_ids=frozenset({111, 112}) if role in (R.RESIDENT, R.GRID_WORKER, R.GRID_LEADER)
        else frozenset(),
        township_ids=frozenset({10}) if role is R.TOWNSHIP_OPERATOR else frozenset(),
        department_ids=frozenset({1}) if role is R.DEPARTMENT_HANDLER else frozenset(),
    )  # fmt: skip


def make_case(state: State, *, own: bool, role: Role, action: Action) -> Case:
    reporter = OWN_PERSON[role] if own and role is not R.SYSTEM else 99
    if action is A.SUBMIT:
        reporter = OWN_PERSON.get(role, 99)  # whoever submits is the reporter
    case = Case(
        number="JL-20261123-0001",
        state=state,
        category_id=1,
        deadline_class=DeadlineClass.GENERAL,
        grid_id=111 if own else 211,
        village_id=11 if own else 21,
        township_id=10 if own else 20,
        reporter_id=reporter,
        reporter_role=R.RESIDENT,
        description="井盖破损",
        created_at=NOW - timedelta(days=10),
        department_id=(1 if own else 2) if state in (S.ASSIGNED, S.IN_PROGRESS, S.RESOLVED)
        else None,
        handled_by_township=role is R.TOWNSHIP_OPERATOR and state is S.IN_PROGRESS,
        resolved_at=NOW - timedelta(days=5) if state is S.RESOLVED else None,
        stage_entered_at=NOW - timedelta(days=1),
    )  # fmt: skip
    return case


def good_params(action: Action) -> dict:
    return {
        A.SCREEN_INVALID: {"reason": "不在本县"},
        A.MARK_DUPLICATE: {"duplicate_of": "JL-20261120-0007"},
        A.RECLASSIFY: {"category_id": 2, "deadline_class": DeadlineClass.LIVELIHOOD},
        A.ASSIGN: {"department_id": 2},
        A.RETURN: {"reason": "不属于本单位职责"},
        A.NOTE: {"text": "已安排人员"},
        A.RESOLVE: {"text": "已更换井盖"},
        A.RATE: {"rating": Rating.SATISFIED},
        A.CLOSE: {"reason": "经核实已解决"},
        A.SUPERVISE: {"reason": "请加快办理"},
    }.get(action, {})


def do(case: Case, action: Action, who: Actor, params: dict | None = None, policy=POLICY):
    return fire(case, action, who, params or {}, policy=policy, calendar=CAL, now=NOW)


def test_expected_matrix_and_table_cover_the_same_cells():
    table_cells = {(t.action, s) for t in TRANSITIONS for s in t.sources}
    assert table_cells == set(EXPECTED)


CELLS = [
    (action, state, role, own)
    for (action, state) in EXPECTED
    for role in Role
    for own in (True, False)
]


@pytest.mark.parametrize(("action", "state", "role", "own"), CELLS)
def test_authorization_matrix(action, state, role, own):
    case = make_case(state, own=own, role=role, action=action)
    before = copy.deepcopy(case)
    allowed = role in EXPECTED[(action, state)] and (
        own or role in COUNTY_WIDE or (action is A.SUBMIT and role is R.RESIDENT)
    )
    if allowed:
        event = do(case, action, actor(role), good_params(action))
        assert event.from_state is state
        assert len(case.new_entries) == 1
        entry = case.new_entries[0]
        assert (entry.action, entry.actor_role, entry.at) == (action, role, NOW)
    else:
        with pytest.raises(NotPermitted) as info:
            do(case, action, actor(role), good_params(action))
        assert info.value.code in ("role_not_allowed", "not_your_case")
        assert case == before  # nothing changed, no trail entry


@pytest.mark.parametrize(
    ("action", "state"),
    [(a, s) for a in Action for s in State if (a, s) not in EXPECTED],
)
def test_every_illegal_transition_is_refused_and_changes_nothing(action, state):
    case = make_case(state, own=True, role=R.SUPERVISOR, action=action)
    before = copy.deepcopy(case)
    with pytest.raises(IllegalTransition) as info:
        do(case, action, actor(R.SUPERVISOR), good_params(action))
    assert info.value.params == {"action": action.value, "state": state.value}
    assert state.value in str(info.value)
    assert case == before


TARGETS = [
    (A.ROUTE, S.REPORTED, R.SYSTEM, {}, S.SCREENING),
    (A.SCREEN_VALID, S.SCREENING, R.GRID_LEADER, {}, S.TOWNSHIP),
    (A.SCREEN_INVALID, S.SCREENING, R.GRID_LEADER, {"reason": "重复上报"}, S.REJECTED),
    (A.MARK_DUPLICATE, S.COUNTY, R.COUNTY_DISPATCHER, {"duplicate_of": "JL-1"}, S.DUPLICATE),
    (A.RECLASSIFY, S.TOWNSHIP, R.TOWNSHIP_OPERATOR, good_params(A.RECLASSIFY), S.TOWNSHIP),
    (A.HANDLE_LOCALLY, S.TOWNSHIP, R.TOWNSHIP_OPERATOR, {}, S.IN_PROGRESS),
    (A.PASS_UP, S.TOWNSHIP, R.TOWNSHIP_OPERATOR, {}, S.COUNTY),
    (A.PASS_UP, S.IN_PROGRESS, R.TOWNSHIP_OPERATOR, {}, S.COUNTY),
    (A.ASSIGN, S.COUNTY, R.COUNTY_DISPATCHER, {"department_id": 1}, S.ASSIGNED),
    (A.ASSIGN, S.RETURNED, R.COUNTY_DISPATCHER, {"department_id": 1}, S.ASSIGNED),
    (A.ASSIGN, S.SUPERVISION, R.SUPERVISOR, {"department_id": 1}, S.ASSIGNED),
    (A.ACCEPT, S.ASSIGNED, R.DEPARTMENT_HANDLER, {}, S.IN_PROGRESS),
    (A.RETURN, S.ASSIGNED, R.DEPARTMENT_HANDLER, {"reason": "非本单位"}, S.RETURNED),
    (A.RETURN, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, {"reason": "非本单位"}, S.RETURNED),
    (A.NOTE, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, {"text": "已派人"}, S.IN_PROGRESS),
    (A.NOTE, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, {"attachment_ids": (5,)}, S.IN_PROGRESS),
    (A.RESOLVE, S.IN_PROGRESS, R.TOWNSHIP_OPERATOR, {"text": "已处理"}, S.RESOLVED),
    (A.RATE, S.RESOLVED, R.RESIDENT, {"rating": Rating.BASICALLY_SATISFIED}, S.CLOSED),
    (A.RATE, S.RESOLVED, R.GRID_WORKER, {"rating": Rating.DISSATISFIED}, S.IN_PROGRESS),
    (A.CLOSE, S.SUPERVISION, R.SUPERVISOR, {"reason": "已核实"}, S.CLOSED),
    (A.CLOSE_UNRATED, S.RESOLVED, R.SYSTEM, {}, S.CLOSED_UNRATED),
    (A.SUPERVISE, S.ASSIGNED, R.SUPERVISOR, {"reason": "请今日签收"}, S.ASSIGNED),
]


@pytest.mark.parametrize(("action", "state", "role", "params", "target"), TARGETS)
def test_each_transition_lands_where_the_issue_says(action, state, role, params, target):
    case = make_case(state, own=True, role=role, action=action)
    event = do(case, action, actor(role), params)
    assert case.state is target and event.to_state is target
    entry = case.new_entries[-1]
    assert (entry.from_state, entry.to_state) == (state, target)
    assert entry.attachment_ids == tuple(params.get("attachment_ids", ()))
    if target in (S.CLOSED, S.CLOSED_UNRATED, S.REJECTED, S.DUPLICATE):
        assert case.closed_at == NOW and case.stage_due_at is None


GUARD_FAILURES = [
    (A.SCREEN_INVALID, S.SCREENING, R.GRID_LEADER, {"reason": "   "}, "reason_required"),
    (A.RETURN, S.ASSIGNED, R.DEPARTMENT_HANDLER, {}, "reason_required"),
    (A.CLOSE, S.SUPERVISION, R.SUPERVISOR, {}, "reason_required"),
    (A.SUPERVISE, S.COUNTY, R.SUPERVISOR, {}, "reason_required"),
    (A.RESOLVE, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, {"attachment_ids": (1,)}, "text_required"),
    (A.NOTE, S.IN_PROGRESS, R.DEPARTMENT_HANDLER, {}, "text_or_photo_required"),
    (A.ASSIGN, S.COUNTY, R.COUNTY_DISPATCHER, {}, "department_required"),
    (A.RECLASSIFY, S.SCREENING, R.GRID_LEADER, {"category_id": 1}, "new_category_required"),
    (A.MARK_DUPLICATE, S.SCREENING, R.GRID_LEADER, {"duplicate_of": "JL-20261123-0001"},
     "duplicate_target_required"),
    (A.RATE, S.RESOLVED, R.RESIDENT, {}, "rating_required"),
    (A.RATE, S.RESOLVED, R.RESIDENT, {"rating": "great"}, "rating_required"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "state", "role", "params", "code"), GUARD_FAILURES)
def test_guards_refuse_with_a_reason_and_change_nothing(action, state, role, params, code):
    case = make_case(state, own=True, role=role, action=action)
    before = copy.deepcopy(case)
    with pytest.raises(GuardFailed) as info:
        do(case, action, actor(role), params)
    assert info.value.code == code
    assert case == before


def test_close_unrated_waits_for_the_rating_window():
    case = make_case(S.RESOLVED, own=True, role=R.SYSTEM, action=A.CLOSE_UNRATED)
    case.resolved_at = NOW - timedelta(days=2, hours=23)
    with pytest.raises(GuardFailed) as info:
        do(case, A.CLOSE_UNRATED, Actor.system())
    assert info.value.code == "rating_window_open"
    case.resolved_at = NOW - timedelta(days=3)
    do(case, A.CLOSE_UNRATED, Actor.system())
    assert case.state is S.CLOSED_UNRATED and case.rating is None


def test_department_cannot_note_or_return_a_case_the_township_handles():
    case = make_case(S.IN_PROGRESS, own=True, role=R.TOWNSHIP_OPERATOR, action=A.NOTE)
    handler = actor(R.DEPARTMENT_HANDLER)
    with pytest.raises(GuardFailed) as info:
        do(case, A.RETURN, handler, {"reason": "x"})
    assert info.value.code == "not_held_by_department"
    with pytest.raises(GuardFailed) as info:
        do(case, A.NOTE, handler, {"text": "x"})
    assert info.value.code == "not_holder"


def test_dissatisfied_reopens_once_then_goes_to_the_supervisor():
    case = make_case(S.RESOLVED, own=True, role=R.RESIDENT, action=A.RATE)
    resident, handler = actor(R.RESIDENT), actor(R.DEPARTMENT_HANDLER)
    event = do(case, A.RATE, resident, {"rating": Rating.DISSATISFIED, "comment": "没修好"})
    assert type(event) is CaseReopened
    assert case.state is S.IN_PROGRESS and case.department_id == 1 and case.reopen_count == 1
    assert case.due_basis_at == NOW  # a fresh time limit from the reopening
    do(case, A.RESOLVE, handler, {"text": "重新更换"})
    event = do(case, A.RATE, resident, {"rating": Rating.DISSATISFIED})
    assert type(event) is CaseEscalated and case.state is S.SUPERVISION


def test_route_skipping_the_township_level():
    policy = WorkflowPolicy(route=("screening", "county"))  # type: ignore[arg-type]
    case = make_case(S.SCREENING, own=True, role=R.GRID_LEADER, action=A.SCREEN_VALID)
    do(case, A.SCREEN_VALID, actor(R.GRID_LEADER), policy=policy)
    assert case.state is S.COUNTY
    county_only = WorkflowPolicy(route=("county",))  # type: ignore[arg-type]
    case = make_case(S.REPORTED, own=True, role=R.SYSTEM, action=A.ROUTE)
    do(case, A.ROUTE, Actor.system(), policy=county_only)
    assert case.state is S.COUNTY


def test_emergency_route_goes_straight_to_the_county():
    policy = WorkflowPolicy(emergency_route=("county",))  # type: ignore[arg-type]
    case = make_case(S.REPORTED, own=True, role=R.SYSTEM, action=A.ROUTE)
    case.deadline_class = DeadlineClass.EMERGENCY
    do(case, A.ROUTE, Actor.system(), policy=policy)
    assert case.state is S.COUNTY
    ordinary = make_case(S.REPORTED, own=True, role=R.SYSTEM, action=A.ROUTE)
    do(ordinary, A.ROUTE, Actor.system(), policy=policy)
    assert ordinary.state is S.SCREENING


@pytest.mark.parametrize(
    "route",
    [(), ("screening",), ("county", "township"), ("county", "county"), ("village", "county")],
)
def test_bad_routes_are_refused(route):
    from workflow.errors import WorkflowError

    with pytest.raises(WorkflowError) as info:
        WorkflowPolicy(route=route)  # type: ignore[arg-type]
    assert info.value.code == "invalid_route"
