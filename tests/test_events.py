"""Domain events are classes: the table names them, the bus dispatches by class, never by name."""

from __future__ import annotations

import inspect
from datetime import datetime
from operator import attrgetter

import pytest

from handlers.notify import HANDLERS, SHOWN_TO_REPORTER, UNTOLD, Notifier
from tests.fakes import calendar_2026, fake_card
from workflow import events
from workflow.bus import MessageBus
from workflow.cards import CaseCard
from workflow.clock import SHANGHAI
from workflow.events import (
    CaseAccepted,
    CaseAssigned,
    CaseEvent,
    CaseReported,
    CaseRouted,
    Event,
    ReminderDue,
)
from workflow.machine import fire
from workflow.model import Action, Actor, Case, DeadlineClass, Role, State, TrailEntry
from workflow.policy import WorkflowPolicy
from workflow.table import EMITTED_EVENTS, REPORTER_NEWS, TRANSITIONS

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


def entry(action: Action = Action.ASSIGN, to_state: State = State.ASSIGNED) -> TrailEntry:
    return TrailEntry(
        action=action, from_state=State.COUNTY, to_state=to_state, actor_id=3,
        actor_role=Role.COUNTY_DISPATCHER, at=NOW, comment="先处理", data={"department": "x"},
    )  # fmt: skip


def recorder(calls: list[tuple[str, Event]], label: str):
    async def handler(event: Event, context: list[str]) -> list[str]:
        calls.append((label, event))
        return [f"{label}:{context[0]}"]

    return handler


async def test_a_handler_is_called_for_its_event_class_and_for_no_other():
    calls: list[tuple[str, Event]] = []
    bus = MessageBus({
        CaseAssigned: [recorder(calls, "first"), recorder(calls, "second")],
        CaseEvent: [recorder(calls, "base")],  # a base class is not a catch-all
    })  # fmt: skip
    assigned = CaseAssigned("JL-1", entry())
    assert await bus.handle(assigned, ["ctx"]) == ["first:ctx", "second:ctx"]
    assert calls == [("first", assigned), ("second", assigned)]
    calls.clear()
    accepted = CaseAccepted("JL-1", entry(Action.ACCEPT, State.IN_PROGRESS))
    assert await bus.handle(accepted, ["ctx"]) == []
    assert calls == []


async def test_an_event_class_without_handlers_is_fine():
    bus: MessageBus[None, str] = MessageBus({})
    assert await bus.handle(CaseReported("JL-1", entry(Action.SUBMIT, State.REPORTED)), None) == []
    reminder = ReminderDue("JL-1", "at", "holder", 0, State.ASSIGNED, NOW, NOW)
    assert await bus.handle(reminder, None) == []


def _event_classes() -> set[type[CaseEvent]]:
    return {
        cls
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if issubclass(cls, CaseEvent) and cls is not CaseEvent
    }


def test_every_event_the_table_can_produce_has_its_own_class():
    for row in TRANSITIONS:
        assert issubclass(row.emits, CaseEvent) and row.emits is not CaseEvent, row
    assert EMITTED_EVENTS == {row.emits for row in TRANSITIONS}
    # ...and no class is left over that nothing emits.
    assert _event_classes() == EMITTED_EVENTS
    # The name stays the string the docs and earlier releases show.
    assert {cls.__name__ for cls in EMITTED_EVENTS} >= {
        "CaseReported", "CaseRouted", "CaseAssigned", "CaseResolved", "CaseSupervised",
        "CaseReclassified", "ProgressNoted", "CaseClosedUnrated",
    }  # fmt: skip
    assert CaseAssigned("JL-1", entry()).name == "CaseAssigned"


def test_each_action_emits_the_class_its_row_names():
    """One row, one class; only a rating's outcome (guards) picks between classes."""
    by_action: dict[Action, set[type[CaseEvent]]] = {}
    for row in TRANSITIONS:
        by_action.setdefault(row.action, set()).add(row.emits)
    multi = {a: names for a, names in by_action.items() if len(names) > 1}
    assert set(multi) == {Action.RATE}


def test_every_event_either_tells_someone_or_is_deliberately_untold():
    """A new row in the table forces a decision in handlers/notify.py about who hears of it."""
    assert not (set(HANDLERS) & UNTOLD)
    assert set(HANDLERS) | UNTOLD == EMITTED_EVENTS


def test_the_reporter_is_told_exactly_of_the_news_the_table_declares():
    """workflow/table.py REPORTER_NEWS decides (storage's /my timeline reads it too);
    handlers/notify.py only says how each is told."""
    assert set(SHOWN_TO_REPORTER) == REPORTER_NEWS


def test_the_event_carries_the_very_trail_entry_the_transition_wrote():
    case = Case(
        number="JL-20261123-0001", state=State.COUNTY, category_id=1,
        deadline_class=DeadlineClass.GENERAL, grid_id=111, village_id=11, township_id=10,
        reporter_id=99, reporter_role=Role.RESIDENT, description="路灯不亮", created_at=NOW,
    )  # fmt: skip
    dispatcher = Actor(person_id=3, role=Role.COUNTY_DISPATCHER)
    event = fire(
        case, Action.ASSIGN, dispatcher, {"department_id": 1, "comment": " 尽快 "},
        policy=WorkflowPolicy(), calendar=calendar_2026(), now=NOW,
    )  # fmt: skip
    assert type(event) is CaseAssigned and event.case_number == case.number
    assert case.new_entries == [event.entry] and case.new_entries[0] is event.entry
    assert (event.from_state, event.to_state, event.comment) == (
        State.COUNTY, State.ASSIGNED, "尽快"
    )  # fmt: skip
    assert event.data == {"department_id": 1} and event.at == NOW


class _Untouchable:
    """Channels and outbox that fail the test if anyone reads a card or writes a message."""

    async def case_card(self, number: str) -> CaseCard:
        raise AssertionError("an untold event read a case card")

    async def messages_showing(self, number: str, purposes: object, limit: int) -> list:
        return []  # no card out yet: nothing to keep true either

    async def add(self, message: object) -> None:
        raise AssertionError("an untold event wrote a message")


class _NoCardsUow:
    channels = outbox = _Untouchable()


@pytest.mark.parametrize("event_class", sorted(UNTOLD, key=attrgetter("__name__")))
async def test_an_untold_event_costs_no_query_and_sends_nothing(event_class):
    await Notifier()(_NoCardsUow(), [event_class("JL-1", entry())])


async def test_the_notifier_reads_one_card_for_a_batch_of_events_on_one_case():
    reads: list[str] = []

    class Channels:
        async def case_card(self, number: str) -> CaseCard:
            reads.append(number)
            return fake_card(number)

        async def messages_showing(self, number: str, purposes: object, limit: int) -> list:
            return []

        async def chats_for(self, purpose: str, **where: object) -> list:
            return []

        async def private_chats_with_role(self, role: Role, **where: object) -> list:
            return []

    class Uow:
        channels = Channels()

    routed = CaseRouted("JL-1", entry(Action.ROUTE, State.COUNTY))
    await Notifier()(Uow(), [CaseReported("JL-1", entry()), routed, routed])
    assert reads == ["JL-1"]


# Who hears of each event (one holder, no group chats bound): (chat, what they are sent).
# Pins handlers/notify.py's registry, since the end-to-end tests walk only the common paths.
REPORTER, GRID, TOWN, COUNTY = "reporter", "grid_leader", "township_operator", "county_dispatcher"
DEPT, SUPERVISORS = "department_handler", "supervisor"
S = State
TOLD: list[tuple[type[CaseEvent], State, State, list[tuple[str, str]]]] = [
    (events.CaseReported, S.NEW, S.REPORTED, []),
    (events.CaseRouted, S.REPORTED, S.SCREENING, [(GRID, "case_card")]),
    (events.CaseValidated, S.SCREENING, S.TOWNSHIP,
     [(REPORTER, "news_validated"), (TOWN, "case_card")]),
    (events.CaseRejected, S.SCREENING, S.REJECTED, [(REPORTER, "news_rejected")]),
    (events.CaseMarkedDuplicate, S.TOWNSHIP, S.DUPLICATE, [(REPORTER, "news_duplicate")]),
    (events.CaseReclassified, S.COUNTY, S.COUNTY, [(COUNTY, "case_card")]),
    (events.CaseTakenByTownship, S.TOWNSHIP, S.IN_PROGRESS, [(REPORTER, "news_accepted")]),
    (events.CasePassedUp, S.TOWNSHIP, S.COUNTY,
     [(REPORTER, "news_passed_up"), (COUNTY, "case_card")]),
    (events.CaseAssigned, S.COUNTY, S.ASSIGNED, [(REPORTER, "news_assigned"), (DEPT, "case_card")]),
    (events.CaseAccepted, S.ASSIGNED, S.IN_PROGRESS,
     [(REPORTER, "news_accepted"), (DEPT, "case_card")]),
    (events.CaseReturned, S.IN_PROGRESS, S.RETURNED, [(COUNTY, "case_card")]),
    (events.ProgressNoted, S.IN_PROGRESS, S.IN_PROGRESS, [(REPORTER, "news_progress")]),
    (events.CaseResolved, S.IN_PROGRESS, S.RESOLVED, [(REPORTER, "news_resolved")]),
    (events.CaseRated, S.RESOLVED, S.CLOSED, []),
    (events.CaseReopened, S.RESOLVED, S.IN_PROGRESS,
     [(REPORTER, "news_reopened"), (DEPT, "case_card")]),
    (events.CaseEscalated, S.RESOLVED, S.SUPERVISION, [(SUPERVISORS, "case_card")]),
    (events.CaseClosed, S.SUPERVISION, S.CLOSED, [(REPORTER, "news_closed")]),
    (events.CaseClosedUnrated, S.RESOLVED, S.CLOSED_UNRATED, []),
    (events.CaseSupervised, S.ASSIGNED, S.ASSIGNED, [(DEPT, "instruction")]),
]  # fmt: skip


class _Chats:
    """Every unit reached through its people's private chats, named by role."""

    def __init__(self, card: CaseCard) -> None:
        self.card = card

    async def case_card(self, number: str) -> CaseCard:
        return self.card

    async def messages_showing(self, number: str, purposes: object, limit: int) -> list:
        return []

    async def chats_for(self, purpose: str, **where: object) -> list:
        return []

    async def private_chats_with_role(self, role: Role, **where: object) -> list:
        return [("telegram", role.value, "en")]

    async def private_chats_of(self, person_id: int) -> list:
        return [("telegram", REPORTER, "zh_CN")]


class _Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def add(self, message) -> None:
        self.sent.append((message.chat_id, message.payload["text"]))


async def _told(event: CaseEvent, deadline_class: str = "general") -> list[tuple[str, str]]:
    card = fake_card(
        event.case_number, state=event.to_state.value, reporter_id=5,
        deadline_class=deadline_class, department_id=1,
    )  # fmt: skip
    uow = type("Uow", (), {"channels": _Chats(card), "outbox": _Outbox()})()
    await Notifier()(uow, [event])
    return uow.outbox.sent


@pytest.fixture
def template_names(monkeypatch):
    """Render each message as the name of its template, so the test reads who got what."""
    monkeypatch.setattr("handlers.render.Renderer.macro", lambda self, _file, name, **kw: name)


@pytest.mark.parametrize(("cls", "source", "target", "expected"), TOLD,
                         ids=[row[0].__name__ for row in TOLD])  # fmt: skip
async def test_who_hears_of_each_event(template_names, cls, source, target, expected):
    action = next(t.action for t in TRANSITIONS if t.emits is cls)
    event = cls("JL-1", TrailEntry(action, source, target, 1, Role.SYSTEM, NOW))
    assert await _told(event) == expected


def test_the_table_of_who_hears_what_covers_every_event():
    assert {row[0] for row in TOLD} == EMITTED_EVENTS


async def test_an_emergency_pages_the_township_and_the_county_before_the_holder_card(
    template_names,
):
    routed = CaseRouted("JL-1", TrailEntry(Action.ROUTE, S.REPORTED, S.TOWNSHIP, None,
                                           Role.SYSTEM, NOW))  # fmt: skip
    assert await _told(routed, "emergency") == [
        (COUNTY, "emergency_page"), (TOWN, "case_card")  # the township holds it: no page
    ]  # fmt: skip
