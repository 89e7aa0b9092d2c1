"""What screens offer is derived from the table: buttons, holders, state sets, callback data."""

from __future__ import annotations

import pytest

from handlers.callbacks import (
    AssignTo,
    CaseAction,
    CaseChoice,
    LegacyRateAs,
    RateAs,
    RatingButton,
    ReclassifyTo,
)
from handlers.render import LOCALES, Renderer
from handlers.units import HolderUnit, card_buttons, holder_unit, superior_unit
from storage.analytics.scope import UNRATED_ENDINGS
from tests.fakes import fake_card
from workflow.cards import ProposedDepartment
from workflow.model import HUMAN_ROLES, Action, Holder, Role, State
from workflow.policy import STAGE_STATES
from workflow.states import (
    DISMISSED_STATES,
    OPEN_STATES,
    REMINDED_STATES,
    RESULT_STATES,
    STATES,
    TERMINAL_STATES,
    UNRATED_STATES,
    holder_of,
)
from workflow.table import (
    ACTION_OF_CODE,
    SCREENS,
    TRANSITIONS,
    Ask,
    available_actions,
    offered_actions,
)

A, R, S = Action, Role, State
HOUSING = ProposedDepartment("housing", "住房和城乡建设局", "Housing bureau")


def actions_of(buttons: list) -> list[Action]:
    """The actions a card's buttons fire, in order, each once."""
    found: list[Action] = []
    for row in buttons:
        for button in row:
            if AssignTo.matches(button.data):
                AssignTo.unpack(button.data)
                action = A.ASSIGN
            elif RateAs.matches(button.data):
                RateAs.unpack(button.data)
                action = A.RATE
            else:
                action = CaseAction.unpack(button.data).action
            assert action is not None, button.data
            if action not in found:
                found.append(action)
    return found


def test_each_screen_has_a_unique_code_and_a_label_in_every_locale():
    codes = [s.code for s in SCREENS.values()]
    assert len(codes) == len(set(codes))
    assert ACTION_OF_CODE["rn"] is A.RETURN and ACTION_OF_CODE["ra"] is A.RATE
    assert ACTION_OF_CODE["rt"] is A.RETURN  # cards sent before the rename still work
    for locale in LOCALES:
        r = Renderer(locale)
        labels = [r.macro("chat.html.j2", s.label) for s in SCREENS.values()]
        assert all(labels) and len(set(labels)) == len(labels), locale
    # Every action a person takes has a screen; only the system's own have none.
    people = {t.action for t in TRANSITIONS if t.roles - {R.SYSTEM}}
    assert people - set(SCREENS) == {A.SUBMIT}  # the report dialogue, not a card button
    assert set(SCREENS) <= people


@pytest.mark.parametrize("state", [s for s in State if s is not S.NEW])
@pytest.mark.parametrize("role", HUMAN_ROLES)
@pytest.mark.parametrize("departments", [[HOUSING], []])
def test_a_card_offers_exactly_what_the_table_allows(state, role, departments):
    card = fake_card(state=state.value, proposed_departments=departments)
    for locale in LOCALES:
        offered = actions_of(card_buttons(Renderer(locale), card, role))
        allowed = [a for a in available_actions(state, role) if a in SCREENS]
        assert offered_actions(state, role) == allowed, (state, role)
        assert sorted(offered) == sorted(allowed), (state, role)  # choices come first
    for row in card_buttons(Renderer("zh_CN"), card, role):
        assert all(len(b.data.encode()) <= 64 for b in row)


def test_the_cards_that_used_to_miss_actions_offer_them_now():
    r = Renderer("zh_CN")
    n = "JL-20261123-0001"

    def data(state: State, role: Role) -> list[str]:
        card = fake_card(n, state=state.value, proposed_departments=[HOUSING])
        return [b.data for row in card_buttons(r, card, role) for b in row]

    for state in (S.COUNTY, S.RETURNED):
        assert data(state, R.COUNTY_DISPATCHER) == [
            f"as:housing:{n}", f"a:si:{n}", f"a:dp:{n}", f"a:rc:{n}"
        ]  # fmt: skip
    assert data(S.SUPERVISION, R.SUPERVISOR) == [f"as:housing:{n}", f"a:cl:{n}", f"a:su:{n}"]
    assert data(S.ASSIGNED, R.DEPARTMENT_HANDLER) == [f"a:ac:{n}", f"a:rn:{n}"]
    assert data(S.RESOLVED, R.RESIDENT) == [f"ra:{n}:s", f"ra:{n}:b", f"ra:{n}:d"]
    # Nothing on an ended case, for anybody.
    for state in TERMINAL_STATES:
        assert all(data(state, role) == [] for role in HUMAN_ROLES)


def test_the_assign_button_asks_for_a_department_when_the_category_has_no_owner():
    card = fake_card("JL-1", state="county", proposed_departments=[])
    rows = card_buttons(Renderer("zh_CN"), card, R.COUNTY_DISPATCHER)
    assert "a:as:JL-1" in [b.data for row in rows for b in row]
    assert SCREENS[A.ASSIGN].asks is Ask.DEPARTMENT


def test_callback_data_packs_unpacks_and_refuses_what_is_not_its_own():
    assert CaseAction("rn", "JL-20261123-0001").pack() == "a:rn:JL-20261123-0001"
    assert CaseAction.unpack("a:rn:JL-1") == CaseAction("rn", "JL-1")
    assert CaseAction.unpack("a:rt:JL-1").action is A.RETURN  # an old card's return button
    assert CaseAction.unpack("a:zz:JL-1").action is None
    assert LegacyRateAs.unpack("rt:JL-1:s") == LegacyRateAs("JL-1", "s")
    assert ReclassifyTo("livelihood", "JL-1").pack() == "rc:livelihood:JL-1"
    for bad in ("a:sv", "a:sv:JL-1:x", "as:sv:JL-1", "a::JL-1", "", "a"):
        with pytest.raises(ValueError):
            CaseAction.unpack(bad)
    with pytest.raises(ValueError):
        CaseAction("sv", "x" * 70).pack()  # over Telegram's 64 bytes
    with pytest.raises(ValueError):
        AssignTo("a:b", "JL-1").pack()  # a separator inside a field


def test_choice_and_rating_buttons_share_one_shape_each():
    """AssignTo and ReclassifyTo are one shape (a choice for a case), RateAs and its old form
    another; a shape alone has no prefix and is never a button."""
    assert issubclass(AssignTo, CaseChoice) and issubclass(ReclassifyTo, CaseChoice)
    assert AssignTo("housing", "JL-1").department == "housing"
    assert ReclassifyTo.unpack("rc:livelihood:JL-1").category == "livelihood"
    assert RatingButton.read("ra:JL-1:s") == RateAs("JL-1", "s")
    assert RatingButton.read("rt:JL-1:d") == LegacyRateAs("JL-1", "d")
    assert RatingButton.read("a:sv:JL-1") is None and RatingButton.read(None) is None
    with pytest.raises(AttributeError):
        CaseChoice("housing", "JL-1").pack()


def test_the_state_sets_are_derived_from_the_state_table():
    assert OPEN_STATES == {S.REPORTED, S.SCREENING, S.TOWNSHIP, S.COUNTY, S.ASSIGNED,
                           S.IN_PROGRESS, S.RESOLVED, S.SUPERVISION, S.RETURNED}  # fmt: skip
    assert TERMINAL_STATES == {S.CLOSED, S.CLOSED_UNRATED, S.REJECTED, S.DUPLICATE}
    assert DISMISSED_STATES == {S.REJECTED, S.DUPLICATE}
    assert RESULT_STATES == {S.RESOLVED, S.CLOSED, S.CLOSED_UNRATED}
    # The rates' "never satisfied" endings come from the same table, not a literal.
    assert UNRATED_STATES == {S.CLOSED_UNRATED}
    assert UNRATED_ENDINGS == ("closed_unrated",)
    assert REMINDED_STATES == {S.SCREENING, S.TOWNSHIP, S.COUNTY, S.RETURNED, S.ASSIGNED,
                               S.IN_PROGRESS}  # fmt: skip
    assert STAGE_STATES == {"screening": S.SCREENING, "township": S.TOWNSHIP,
                            "county": S.COUNTY, "returned": S.RETURNED,
                            "acceptance": S.ASSIGNED}  # fmt: skip
    assert set(STATES) == set(State)


def test_holder_and_superior_unit_come_from_the_state_table():
    card = fake_card(grid_id=1, township_id=2, department_id=3)
    grid = HolderUnit("grid", R.GRID_LEADER, 1, None)
    township = HolderUnit("township", R.TOWNSHIP_OPERATOR, 2, None)
    county = HolderUnit("county", R.COUNTY_DISPATCHER, None, None)
    department = HolderUnit("department", R.DEPARTMENT_HANDLER, None, 3)
    leaders = HolderUnit("leaders", R.SUPERVISOR, None, None)
    expected = {
        S.SCREENING: (grid, township), S.TOWNSHIP: (township, county),
        S.COUNTY: (county, leaders), S.RETURNED: (county, leaders),
        S.ASSIGNED: (department, county), S.IN_PROGRESS: (department, county),
        S.SUPERVISION: (HolderUnit("supervisors", R.SUPERVISOR, None, None), leaders),
        S.RESOLVED: (None, leaders), S.CLOSED: (None, leaders),
    }  # fmt: skip
    for state, (holder, superior) in expected.items():
        moved = fake_card(state=state.value, grid_id=1, township_id=2, department_id=3)
        assert holder_unit(state, moved) == holder, state
        assert superior_unit(moved) == superior, state
    taken = fake_card(state="in_progress", township_id=2, handled_by_township=True)
    assert holder_unit("in_progress", taken) == township and superior_unit(taken) == county
    assert holder_of(S.IN_PROGRESS, True) is Holder.TOWNSHIP
    assert holder_of(S.RESOLVED, False) is Holder.REPORTER
    assert card.state == "county"


def test_the_reporter_sees_internal_steps_as_the_step_they_belong_to():
    r = Renderer("en")
    assert r.macro("chat.html.j2", "now_line", state="returned") == (
        "Next: the county center assigns the responsible department."
    )
    assert r.macro("chat.html.j2", "now_line", state="in_progress") == (
        "Next: the responsible unit handles it and reports the result to you."
    )
    assert r.macro("chat.html.j2", "now_line", state="rejected") == (
        "This report is not handled as a case of its own."
    )
    view = {"number": "JL-1", "state": "returned", "description": "x", "timeline": []}
    assert r.macro("chat.html.j2", "case_timeline", view=view).startswith(
        "<b>JL-1</b>  county center\nNext: the county center"
    )
