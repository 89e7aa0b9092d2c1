"""The fixed cost of an update: how many SQL statements a plain text message pays.

Every update pays these, so they bound intake throughput (bench/bench_intake.py). Counted with
SQLAlchemy's cursor hook on the real engine: a statement added to the path fails the test.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.conversation import Conversations
from handlers.messages import Incoming, Location, Outgoing
from handlers.notify import Notifier
from handlers.routes import ALL_ROUTES
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.rows import OutboxRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from tests.support.chat import Photos
from tests.support.engines import counting
from workflow.errors import NotFound, NotPermitted
from workflow.model import Role
from workflow.policy import WorkflowPolicy
from workflow.ports import OutgoingMessage
from workflow.services import Workflow

# processed mark, conversation + person (one read), conversation write, outbox rows; the same on
# PostgreSQL: the chat's turn lock is taken by the processed mark's INSERT (storage/chat_locks.py)
# and the NOTIFY waking other processes is sent by the outbox's trigger (storage/wakeups.py)
PLAIN_TEXT_STATEMENTS = 4
# mark, turn read (the actor's grants with it), case number, case, the two trail entries (one
# INSERT), the card's trail (with its photos and the reporter's name), the holder unit's group
# bindings and members, conversation, outbox rows: the case is read once, its card built once,
# names come from the org cache
CONFIRM_STATEMENTS = 10


class Resident:
    """A resident typing into the bot's private chat."""

    def __init__(self, engine: AsyncEngine, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
        self.n = 0
        self.clock = clock
        self.bot = Conversations(
            UnitOfWorkFactory(session_factory(engine), clock),
            Workflow(WorkflowPolicy(), on_events=Notifier()),
            Photos(MediaStore(tmp_path / "media")), ALL_ROUTES,
        )  # fmt: skip

    async def send(self, user: str = "5001", **kw) -> list[Outgoing]:  # type: ignore[no-untyped-def]
        self.n += 1
        return await self.bot.handle(
            Incoming(
                channel="telegram", chat_id=user, chat_type="private", user_id=user,
                user_name="李秀兰", language="zh-hans", message_id=str(self.n),
                update_key=f"u{self.n}", **kw,
            )
        )  # fmt: skip

    async def press(self, out: list[Outgoing], prefix: str, user: str = "5001") -> list[Outgoing]:
        data = next(
            b.data for m in out for row in m.buttons for b in row if b.data.startswith(prefix)
        )
        return await self.send(user, callback_data=data, callback_id=f"cb{self.n}")

    async def up_to_confirm(self, user: str) -> list[Outgoing]:
        """The whole report dialogue but the last press: its summary with the confirm button."""
        await self.send(user, text="/start JL-XGC-01-G1")
        await self.press(await self.send(user, text="📝 我要说事"), "cat:", user)
        await self.press(await self.send(user, text="东门井盖破损"), "ph:", user)
        await self.send(user, location=Location(latitude=37.22, longitude=115.03))
        return await self.send(user, text="不留电话")


@pytest.fixture
async def resident(engine, clock, tmp_path):  # type: ignore[no-untyped-def]
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    return Resident(engine, clock, tmp_path)


async def test_a_plain_text_update_costs_four_statements(engine, resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    out = await resident.send(text="📝 我要说事")
    await resident.press(out, "cat:")
    with counting(engine) as statements:
        out = await resident.send(text="东门井盖破损，夜里有人踩空")
    assert "照片" in out[0].text  # the description was taken: the dialogue moved on
    assert len(statements) == PLAIN_TEXT_STATEMENTS, statements
    with counting(engine) as statements:
        await resident.send(text="不留电话")  # anything at the photo step: asked again
    assert len(statements) == PLAIN_TEXT_STATEMENTS, statements


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(channel="telegram", chat_id=f"c{n}", payload={"text": f"m{n}"})


async def _stored(engine: AsyncEngine) -> list[str]:
    async with session_factory(engine)() as session:
        rows = await session.execute(select(OutboxRow.payload).order_by(OutboxRow.id))
        return [payload["text"] for payload in rows.scalars()]


async def test_a_turns_outbox_rows_go_in_with_one_statement(engine, clock):
    """Three messages queued in one transaction: one INSERT when it commits, all three stored
    in order, also when the session is committed directly rather than through the unit of
    work; a rollback writes none."""
    uows = UnitOfWorkFactory(session_factory(engine), clock)
    with counting(engine) as statements:
        async with uows() as uow:
            for n in range(3):
                await uow.outbox.add(_message(n))
            await uow.commit()
    # (no NOTIFY of ours on PostgreSQL: the outbox's trigger sends it)
    assert [s.split("(")[0].strip() for s in statements] == ["INSERT INTO outbox"]
    assert await _stored(engine) == ["m0", "m1", "m2"]

    async with uows() as uow:
        await uow.outbox.add(_message(3))
        await uow.session.commit()
    async with uows() as uow:
        await uow.outbox.add(_message(4))
        await uow.rollback()
        await uow.outbox.add(_message(5))
        await uow.commit()
    async with uows() as uow:
        await uow.outbox.add(_message(6))  # left without commit: rolled back
    assert await _stored(engine) == ["m0", "m1", "m2", "m3", "m5"]


async def test_an_actor_is_read_in_one_statement_and_the_turns_with_the_turn(
    engine, resident: Resident
):
    """Every workflow command names its actor: the turn's person comes with the turn's read
    (no statement), anyone else with one; still the two refusals (no such active person; role
    not held), and a grant written in the transaction is seen."""
    await resident.send(text="/start JL-XGC-01-G1")
    await resident.send("5002", text="/start JL-XGC-01-G2")
    uows = UnitOfWorkFactory(session_factory(engine), resident.clock)
    async with uows() as uow:
        other = await uow.channels.person_for("telegram", "5002")
    async with uows() as uow:
        person, _ = await uow.channels.turn_state("telegram", "5001", "5001")
        assert person is not None and other is not None
        with counting(engine) as statements:
            actor = await uow.org.actor(person.id, Role.RESIDENT)
        assert statements == [] and actor.person_id == person.id
        assert len(actor.grid_ids) == 1 and actor.township_ids == frozenset()
        with counting(engine) as statements:
            someone = await uow.org.actor(other.id, Role.RESIDENT)
        assert len(statements) == 1 and someone.grid_ids != actor.grid_ids
        with pytest.raises(NotPermitted):
            await uow.org.actor(person.id, Role.COUNTY_DISPATCHER)
        with pytest.raises(NotFound):
            await uow.org.actor(person.id + 1000, Role.RESIDENT)
        # The person moves to G2 in this transaction: the actor follows, read again.
        now = resident.clock.now()
        await uow.channels.enrol_resident(
            "telegram", "5001", "-", "zh_CN", min(someone.grid_ids), now
        )
        moved = await uow.org.actor(person.id, Role.RESIDENT)
        assert moved.grid_ids == someone.grid_ids


async def test_a_new_residents_start_writes_the_person_without_reading_it_back(
    engine, resident: Resident
):
    await resident.send(text="/start JL-XGC-01-G1")  # the process learns the grid
    with counting(engine) as statements:
        out = await resident.send("5002", text="/start JL-XGC-01-G1")
    assert out and "西郭城村第一网格" in out[0].text  # enrolled in that grid
    # mark, turn read, person lookup, person, identity (an insert: the account is new), grant,
    # outbox
    assert len(statements) == 7, statements
    uows = UnitOfWorkFactory(session_factory(engine), resident.clock)
    async with uows() as uow:
        person = await uow.channels.person_for("telegram", "5002")
        grid = await uow.channels.place_by_code("JL-XGC-01-G1")
    assert person is not None and grid is not None
    assert [(g.role, g.area_ids) for g in person.roles] == [(Role.RESIDENT, frozenset({grid.id}))]


async def test_confirming_a_report_reads_the_case_and_its_card_once(engine, resident: Resident):
    """The confirm press files the case and tells its holder: the case read once (the reply
    takes the one this transaction wrote), one card for all the events, names of places,
    category and departments from the process's org cache, no search for messages showing a
    case that was just filed. The first report warms the cache, the second is counted."""
    await resident.press(await resident.up_to_confirm("5001"), "cf:")
    out = await resident.up_to_confirm("5002")
    with counting(engine) as statements:
        out = await resident.press(out, "cf:", "5002")
    assert "JL-" in out[0].text  # filed: the reply names the new case
    assert len(statements) == CONFIRM_STATEMENTS, statements
    assert sum("FROM cases" in s for s in statements) == 0  # written, never read back
