"""Every (role, action) cell of the transition table can be reached by a person in that role
through a channel: a case is brought to the row's source state, the person presses the button
their card offers and answers what it asks, and the case ends in the row's target state. Both
channels are walked: Telegram (aiogram against the fake Bot API) and the web chat.

That a card offers nothing the table refuses is tests/test_screens.py's
test_a_card_offers_exactly_what_the_table_allows (every state x role, both locales).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import CaseRow, OutboxRow, PersonRow
from tests.support.chat import COUNTY, DEPT_GROUP, HANDLER, LEADER, RESIDENT, TOWNSHIP, Harness
from tests.support.images import jpeg
from tests.support.reach import PLAYERS, Setup, target_state, walk
from tests.support.webchat import Browser
from workflow.guards import held_by_township
from workflow.model import Action, Role, State
from workflow.policy import WorkflowPolicy
from workflow.table import TRANSITIONS, Transition

A, R, S = Action, Role, State

# Cells no card button offers, each with why and where it is walked instead.
NOT_ON_A_CARD: dict[tuple[Action, Role], str] = {
    # The system's own rows: no person may fire them (workflow/table.py roles = {system}).
    (A.ROUTE, R.SYSTEM): "system only: routing right after submit, in the same transaction",
    (A.CLOSE_UNRATED, R.SYSTEM): "system only: the sweeper closes unrated cases",
    # A report is a dialogue, not a card button; walked end to end elsewhere.
    (A.SUBMIT, R.RESIDENT): "report dialogue: tests/test_telegram_e2e.py, tests/test_webchat.py",
    (A.SUBMIT, R.GRID_WORKER): "report in the grid's group: tests/test_group_report.py",
    # Known gap: no channel lets a township or county operator report a case of their own.
    (A.SUBMIT, R.TOWNSHIP_OPERATOR): "not reachable: staff have no report dialogue yet",
    (A.SUBMIT, R.COUNTY_DISPATCHER): "not reachable: staff have no report dialogue yet",
}


def cells() -> Iterator[tuple[Transition, Role, State]]:
    """Every row x role x source state a card offers. A supervisor's instruction is walked from
    `supervision`, the state whose card a supervisor holds; from the other open states the
    supervision reminder card offers the same button (tests/test_reminders.py)."""
    for row in TRANSITIONS:
        for role in sorted(row.roles):
            if (row.action, role) in NOT_ON_A_CARD:
                continue
            sources = [S.SUPERVISION] if row.action is A.SUPERVISE else sorted(row.sources)
            for source in sources:
                yield row, role, source


def test_every_cell_is_walked_or_excluded_with_a_reason():
    every = {(row.action, role) for row in TRANSITIONS for role in row.roles}
    walked = {(row.action, role) for row, role, _ in cells()}
    assert walked | set(NOT_ON_A_CARD) == every and not walked & set(NOT_ON_A_CARD)
    assert len(list(cells())) == 34


async def _walk_all(setup: Setup, driver, state_of, ready) -> list[str]:
    """Every cell on a case of its own: all cases set up first (their cards delivered), then
    each walked and its state compared with the row's target."""
    policy = WorkflowPolicy()
    other = await setup.case(S.SCREENING)  # the original a duplicate points to
    cases = []
    for row, role, source in cells():
        township = held_by_township in row.guards or (
            role is R.TOWNSHIP_OPERATOR and source is S.IN_PROGRESS
        )
        reporter = R.GRID_WORKER if role is R.GRID_WORKER else R.RESIDENT
        number = await setup.case(source, by=reporter, township_holds=township,
                                  reopened=row.emits.__name__ == "CaseEscalated")  # fmt: skip
        assert await state_of(number) is source, (row, role, source)
        cases.append((row, role, source, number))
    await ready()
    failures = []
    for row, role, source, number in cases:
        cell = f"{row.action.value} by {role.value} from {source.value} ({row.emits.__name__})"
        try:
            await walk(driver, row, role, number, other=other)
        except AssertionError as e:
            failures.append(f"{cell}: {str(e)[:300]}")
            continue
        expected = target_state(row, source, policy)
        if (found := await state_of(number)) is not expected:
            failures.append(f"{cell}: ended in {found.value}, expected {expected.value}")
    return failures


async def _state_of(sessions, number: str) -> State:
    async with sessions() as session:
        found = await session.execute(select(CaseRow.state).where(CaseRow.number == number))
        return State(found.scalar_one())


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
    """Until the sender has sent every queued message: a card pressed must be the newest one
    for its case (an older card of the case carries the same button)."""
    while True:
        async with sessions() as session:
            pending = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
            )
        if not pending:
            return
        calls = len(h.fake.calls_of("sendMessage"))
        with contextlib.suppress(AssertionError):  # the last one may already have gone out
            await h.fake.wait_calls("sendMessage", calls + 1, timeout=0.1)


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

    async def handle(cmd):
        # Each step's cards out before the next: a card is edited only once it was sent.
        await wf.handle(uow(), cmd)
        await _delivered(sessions, harness)

    setup = Setup(lambda cmd: wf.submit(uow(), cmd), handle, people)
    failures = await _walk_all(
        setup, TelegramDriver(harness, sessions), lambda n: _state_of(sessions, n),
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

    async def submit(cmd):
        number = await app.workflow.submit(app.uow(), cmd)
        await chat.deliver_pending()
        return number

    async def handle(cmd):
        await app.workflow.handle(app.uow(), cmd)
        await chat.deliver_pending()

    failures = await _walk_all(
        Setup(submit, handle, people),
        WebDriver(browsers),
        lambda n: _state_of(app.sessions, n),
        chat.deliver_pending,
    )
    assert failures == []
