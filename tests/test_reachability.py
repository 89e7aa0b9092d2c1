"""Every (role, action) cell of the transition table can be reached by a person in that role
through a channel: a case is brought to the row's source state, the person presses the button
their card offers and answers what it asks, and the case ends in the row's target state. Both
channels are walked: Telegram (aiogram against the fake Bot API) and the web chat.

That a card offers nothing the table refuses is tests/test_screens.py's
test_a_card_offers_exactly_what_the_table_allows (every state x role, both locales).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import pytest
from sqlalchemy import func, select

from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import CaseRow, OutboxRow, PersonRow
from tests.support.chat import COUNTY, DEPT_GROUP, HANDLER, LEADER, RESIDENT, TOWNSHIP, Harness
from tests.support.images import jpeg
from tests.support.reach import PLAYERS, Setup, supervision_reminder, target_state, walk
from tests.support.webchat import Browser
from workflow.guards import held_by_township
from workflow.model import Action, Role, State
from workflow.policy import WorkflowPolicy
from workflow.states import OPEN_STATES, TERMINAL_STATES
from workflow.table import SAME, TRANSITIONS, Transition

A, R, S = Action, Role, State

# Cells no card button offers, each with why and where it is walked instead.
NOT_ON_A_CARD: dict[tuple[Action, Role], str] = {
    # The system's own rows: no person may fire them (workflow/table.py roles = {system}).
    (A.ROUTE, R.SYSTEM): "system only: routing right after submit, in the same transaction",
    (A.CLOSE_UNRATED, R.SYSTEM): "system only: the sweeper closes unrated cases",
    # A report is a dialogue, not a card button; walked end to end elsewhere.
    (A.SUBMIT, R.RESIDENT): "report dialogue: tests/test_telegram_e2e.py, tests/test_webchat.py",
    (A.SUBMIT, R.GRID_WORKER): "report in the grid's group: tests/test_group_report.py",
    # Staff enter reports taken by phone or at the counter: the dialogue in their private chat.
    (A.SUBMIT, R.TOWNSHIP_OPERATOR): "report on someone's behalf: tests/test_staff_report.py",
    (A.SUBMIT, R.COUNTY_DISPATCHER): "report on someone's behalf: tests/test_staff_report.py",
}


def cells() -> Iterator[tuple[Transition, Role, State]]:
    """Every row x role x source state a card offers. A supervisor's instruction is walked from
    every open state: from `supervision` on the card the escalation brings, from the others on
    the supervision card the sweep sends when a stage is overdue (and from `resolved` on the one
    sent while the case was still in progress). `reported` is left out: routing moves a case
    on in the transaction that reports it, so no case ever rests there to be instructed."""
    for row in TRANSITIONS:
        for role in sorted(row.roles):
            if (row.action, role) in NOT_ON_A_CARD:
                continue
            sources = row.sources - {S.REPORTED} if row.action is A.SUPERVISE else row.sources
            for source in sorted(sources):
                yield row, role, source


def test_every_cell_is_walked_or_excluded_with_a_reason():
    every = {(row.action, role) for row in TRANSITIONS for role in row.roles}
    walked = {(row.action, role) for row, role, _ in cells()}
    assert walked | set(NOT_ON_A_CARD) == every and not walked & set(NOT_ON_A_CARD)
    assert not [why for why in NOT_ON_A_CARD.values() if "not reachable" in why]
    supervised = sorted(source for row, _, source in cells() if row.action is A.SUPERVISE)
    assert supervised == sorted(OPEN_STATES - {S.REPORTED})
    assert len(list(cells())) == 41


class Facts(NamedTuple):
    """What decides which cells a case can be walked through next."""

    state: State
    township_holds: bool
    reopened: bool
    reporter: Role
    category_id: int


def _township_cell(row: Transition, role: Role, source: State) -> bool:
    return held_by_township in row.guards or (
        role is R.TOWNSHIP_OPERATOR and source is S.IN_PROGRESS
    )


def _fits(cell: tuple[Transition, Role, State], case: Facts, category_id: int) -> bool:
    """Whether the cell can be walked on this case as it is now."""
    row, role, source = cell
    if case.state is not source:
        return False
    if _township_cell(row, role, source) and not case.township_holds:
        return False
    if role is R.DEPARTMENT_HANDLER and case.township_holds:
        return False
    if row.action is A.RATE:
        escalates = row.emits.__name__ == "CaseEscalated"
        reopens = row.emits.__name__ == "CaseReopened"
        if case.reporter is not role or (escalates and not case.reopened):
            return False
        if reopens and case.reopened:
            return False
    # Assigning presses the category's housing button; reclassifying picks another category.
    return row.action not in (A.ASSIGN, A.RECLASSIFY) or case.category_id == category_id


_ROUTE = [S.SCREENING, S.TOWNSHIP, S.COUNTY, S.RETURNED, S.ASSIGNED, S.IN_PROGRESS,
          S.RESOLVED, S.SUPERVISION]  # fmt: skip


def _rank(row: Transition) -> int:
    if isinstance(row.target, State) and row.target in TERMINAL_STATES:
        return 3
    if row.action is A.RECLASSIFY:
        return 2
    return 0 if row.target is SAME else 1


async def _walk_all(setup: Setup, driver, facts, ready) -> list[str]:
    """Every cell walked, with as few cases as the table allows: a case is set up (through the
    workflow, as its holders would) for a cell, and where that cell leaves it, the next cell
    that fits it is walked on it too (screened valid, it is the township's to handle; resolved,
    it is the resident's to rate...), until it ends or nothing fits. Each cell's end state is
    compared with the row's target. Every case got the supervisors' supervision card when it
    was set up, as the sweep sends it when a stage is overdue: its instruction button works in
    every open state, so the instruction cells are walked on whatever case is open there."""
    policy = WorkflowPolicy()
    other = await setup.case(S.SCREENING)  # the original a duplicate points to
    # Cells that keep a case going first, those that end it (or, reclassifying, change what
    # its card offers) last; cases start as early on the route as a cell allows.
    todo = sorted(cells(), key=lambda c: (_rank(c[0]), _ROUTE.index(c[2])))
    failures: list[str] = []
    while todo:
        row, role, source = todo.pop(0)
        reporter = R.GRID_WORKER if role is R.GRID_WORKER else R.RESIDENT
        number = await setup.case(
            source, by=reporter, township_holds=_township_cell(row, role, source),
            reopened=row.emits.__name__ == "CaseEscalated", supervised=True,
        )  # fmt: skip
        category_id = (await facts(number)).category_id
        await ready()
        cell: tuple[Transition, Role, State] | None = (row, role, source)
        while cell is not None:
            row, role, source = cell
            name = f"{row.action.value} by {role.value} from {source.value} ({row.emits.__name__})"
            try:
                await walk(driver, row, role, number, other=other)
            except AssertionError as e:
                failures.append(f"{name}: {str(e)[:300]}")
                break
            expected = target_state(row, source, policy)
            now = await facts(number)
            if now.state is not expected:
                failures.append(f"{name}: ended in {now.state.value}, expected {expected.value}")
                break
            cell = next((c for c in todo if _fits(c, now, category_id)), None)
            if cell is not None:
                todo.remove(cell)
    return failures


async def _facts(sessions, number: str) -> Facts:
    async with sessions() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
        return Facts(State(case.state), case.handled_by_township, case.reopen_count > 0,
                     Role(case.reporter_role), case.category_id)  # fmt: skip


# Telegram ------------------------------------------------------------------------------------

SUPERVISOR, WORKER = 7005, 8001


class TelegramDriver:
    """Presses and writes as Telegram users; each step waits for the bot's answer."""

    def __init__(self, h: Harness, sessions) -> None:
        self.h = h
        self.sessions = sessions
        self.fake = h.fake
        personal = {R.RESIDENT: RESIDENT, R.GRID_WORKER: WORKER, R.GRID_LEADER: LEADER,
                    R.TOWNSHIP_OPERATOR: TOWNSHIP, R.COUNTY_DISPATCHER: COUNTY,
                    R.SUPERVISOR: SUPERVISOR}  # fmt: skip
        self.chats = {role: (user, user) for role, user in personal.items()}
        self.chats[R.DEPARTMENT_HANDLER] = (DEPT_GROUP, HANDLER)  # the housing bureau's group

    async def _answered(self, chat: int, act) -> None:
        await _delivered(self.sessions, self.h)  # nothing from earlier turns still on its way
        before = len(self.fake.sent(chat))
        act()
        await self.fake.wait_sent(chat, before + 1, timeout=10)

    async def press(self, role: Role, data: str) -> None:
        chat, user = self.chats[role]
        await _delivered(self.sessions, self.h)  # every card shows its case as it is now
        while True:
            sent = self.fake.sent(chat)
            shown = (self.fake.current(chat, m["message_id"]) for m in reversed(sent))
            message = next((m for m in shown if data in _buttons(m)), None)  # edits included
            if message is not None:
                break
            await self.fake.wait_sent(chat, len(sent) + 1, timeout=10)  # the card on its way
        await self._answered(chat, lambda: self.fake.press(chat, user, message["message_id"], data))

    async def say(self, role: Role, text: str) -> None:
        chat, user = self.chats[role]
        prompt = self.fake.sent(chat)[-1]["message_id"]  # answering the ForceReply
        await self._answered(chat, lambda: self.fake.send_text(chat, user, text, prompt))

    async def photo(self, role: Role) -> None:
        chat, user = self.chats[role]
        await self._answered(chat, lambda: self.fake.send_photo(chat, user, jpeg("green")))


async def _delivered(sessions, h: Harness) -> None:
    """Until every queued message is out: passes of the harness's sender (they wait for its
    own loop's pass, so nothing is sent twice), never a wait on a timer."""
    while await _pending(sessions):
        if not await h.sender.deliver_pending() and await _pending(sessions):
            raise AssertionError("outbox rows pending that the sender does not deliver")


async def _pending(sessions) -> int:
    async with sessions() as session:
        return await session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
        )


def _buttons(message: dict) -> list[str]:
    keyboard = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b.get("callback_data", "") for row in keyboard for b in row]


# The walk does not depend on the database: SQLite only keeps it quick.
@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_every_cell_is_reachable_through_telegram(harness: Harness, world):
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        now = world["uow"].clock.now()
        for code, user in ((PLAYERS[R.SUPERVISOR], SUPERVISOR), (PLAYERS[R.GRID_WORKER], WORKER)):
            invite = await create_invite(session, purpose="enrol", person_code=code, now=now)
            await store.redeem_invite(invite.code, "telegram", str(user), code, str(user), now)
        await session.commit()
    people = {role: world["people"][code] for role, code in PLAYERS.items()}
    people[R.RESIDENT] = world["resident"]  # enrolled on Telegram as chat 5001
    wf, uow = world["wf"], world["uow"]

    sessions = world["sessions"]
    setup = Setup(lambda cmd: wf.submit(uow(), cmd), lambda cmd: wf.handle(uow(), cmd), people,
                  supervision_reminder(uow))  # fmt: skip
    failures = await _walk_all(
        setup, TelegramDriver(harness, sessions), lambda n: _facts(sessions, n),
        lambda: _delivered(sessions, harness),
    )  # fmt: skip
    assert failures == []


# Web chat ------------------------------------------------------------------------------------


class WebDriver:
    """Presses and writes in each role's web chat, as its page does."""

    def __init__(self, browsers: dict[Role, Browser]) -> None:
        self.browsers = browsers

    async def press(self, role: Role, data: str) -> None:
        await self.browsers[role].press(data)

    async def say(self, role: Role, text: str) -> None:
        await self.browsers[role].say(text)

    async def photo(self, role: Role) -> None:
        await self.browsers[role].upload(("site.jpg", jpeg("green"), "image/jpeg"))


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_every_cell_is_reachable_through_the_web_chat(demo):
    b, chat, app = demo
    chats = {role: await b.pick(code) for role, code in PLAYERS.items()}  # links everybody
    browsers = {}
    for role, chat_id in chats.items():
        browsers[role] = Browser(b.client)
        await browsers[role].open(f"/chat/{chat_id}")
    async with app.sessions() as session:
        ids = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
    people = {role: ids[code] for role, code in PLAYERS.items()}

    async def delivered() -> None:
        while await chat.deliver_pending():
            pass

    setup = Setup(lambda cmd: app.workflow.submit(app.uow(), cmd),
                  lambda cmd: app.workflow.handle(app.uow(), cmd), people,
                  supervision_reminder(app.uow))  # fmt: skip
    failures = await _walk_all(
        setup,
        WebDriver(browsers),
        lambda n: _facts(app.sessions, n),
        delivered,
    )
    assert failures == []
