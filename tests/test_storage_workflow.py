"""The workflow on real databases (SQLite and PostgreSQL): repositories, unit of work, outbox."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from storage.calendar import Schedule, seed_calendar, store_schedule
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.queries import case_list, case_view
from storage.rows import AttachmentRow, CaseRow, OutboxRow, PersonRow, TransitionRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from workflow.clock import SHANGHAI
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AddProgressNote,
    AssignCase,
    MarkDuplicate,
    PassUp,
    RateCase,
    ResolveCase,
    SubmitCase,
    ValidateCase,
)
from workflow.errors import ConcurrentUpdate, IllegalTransition, NotPermitted
from workflow.model import Action, Role, State
from workflow.policy import WorkflowPolicy
from workflow.ports import OutgoingMessage
from workflow.services import Workflow


class Env:
    def __init__(self, engine, clock) -> None:
        self.sessions = session_factory(engine)
        self.clock = clock
        self.uow = UnitOfWorkFactory(self.sessions, clock)
        self.sent: list[str] = []
        self.wf = Workflow(WorkflowPolicy(), on_events=self._to_outbox)
        self.people: dict[str, int] = {}

    async def _to_outbox(self, uow, events) -> None:
        for event in events:
            await uow.outbox.add(
                OutgoingMessage(channel="test", chat_id="c1", payload={"event": event.name},
                                case_number=event.case_number)
            )  # fmt: skip

    async def setup(self) -> None:
        async with self.sessions() as session:
            await seed_calendar(session, self.clock.now())
            await session.commit()
        await load_org_file(self.sessions, EXAMPLE_COUNTY)
        async with self.sessions() as session:
            rows = await session.execute(select(PersonRow.code, PersonRow.id))
            self.people = {code: pid for code, pid in rows}

    def who(self, code: str, role: Role) -> ActorRef:
        return ActorRef(self.people[code], role)

    async def count(self, row) -> int:
        async with self.sessions() as session:
            return (await session.execute(select(func.count()).select_from(row))).scalar_one()

    async def photo(self, sha: str) -> int:
        async with self.sessions() as session:
            result = await session.execute(
                insert(AttachmentRow).values(
                    kind="photo", mime_type="image/jpeg", size=10, sha256=sha, public_sha256=sha,
                    created_at=self.clock.now(),
                ).returning(AttachmentRow.id)
            )  # fmt: skip
            await session.commit()
            return result.scalar_one()


@pytest.fixture
async def env(engine, clock):
    e = Env(engine, clock)
    await e.setup()
    return e


RESIDENT = ("P-R-01", Role.RESIDENT)


async def submit(env: Env, **kw) -> str:
    cmd = SubmitCase(
        actor=env.who(*RESIDENT), grid_code="JL-XGC-01-G1", category_code="safety",
        description="井盖破损 <b>危险</b>", **kw,
    )  # fmt: skip
    return await env.wf.submit(env.uow(), cmd)


async def test_the_whole_loop_on_the_database(env: Env):
    before = await env.photo("a" * 64)
    after = await env.photo("b" * 64)
    n = await submit(env, attachment_ids=(before,), location_text="东门", contact_phone="138")
    handler = env.who("P-H-02", Role.DEPARTMENT_HANDLER)
    for cmd in (
        ValidateCase(case_number=n, actor=env.who("P-L-01", Role.GRID_LEADER)),
        PassUp(case_number=n, actor=env.who("P-T-01", Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=n, actor=env.who("P-C-01", Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        AcceptCase(case_number=n, actor=handler),
        AddProgressNote(case_number=n, actor=handler, text="明日维修"),
        ResolveCase(case_number=n, actor=handler, text="已更换", attachment_ids=(after,)),
        RateCase(case_number=n, actor=env.who(*RESIDENT), rating="satisfied"),
    ):  # fmt: skip
        env.clock.advance(minutes=30, seconds=7)
        await env.wf.handle(env.uow(), cmd)
    async with env.sessions() as session:
        view = await case_view(session, n)
    assert view.case.state is State.CLOSED and view.department["code"] == "housing"
    assert [t.action for t in view.timeline] == [
        "submit",
        "route",
        "screen_valid",
        "pass_up",
        "assign",
        "accept",
        "note",
        "resolve",
        "rate",
    ]
    assert [t.actor_name for t in view.timeline][2:6] == ["马建国", "郭志刚", "高文杰", "罗斌"]
    assert view.timeline[0].photos == ["a" * 64] and view.timeline[7].photos == ["b" * 64]
    assert view.timeline[-1].at == env.clock.now()  # aware, to the second, on both databases
    assert view.timeline[-1].at.utcoffset() == timedelta(0)
    assert view.case.description == "井盖破损 <b>危险</b>"
    assert await env.count(OutboxRow) == 9  # one message per event, same transactions


async def test_refused_events_write_nothing(env: Env):
    n = await submit(env)
    trail, outbox = await env.count(TransitionRow), await env.count(OutboxRow)
    with pytest.raises(IllegalTransition):
        await env.wf.handle(env.uow(), AcceptCase(
            case_number=n, actor=env.who("P-H-02", Role.DEPARTMENT_HANDLER)))  # fmt: skip
    with pytest.raises(NotPermitted) as info:  # the other township's grid leader
        await env.wf.handle(env.uow(), ValidateCase(
            case_number=n, actor=env.who("P-L-02", Role.GRID_LEADER)))  # fmt: skip
    assert info.value.code == "not_your_case"
    with pytest.raises(NotPermitted) as info:  # a worker acting as a leader
        await env.wf.handle(env.uow(), ValidateCase(
            case_number=n, actor=env.who("P-W-01", Role.GRID_LEADER)))  # fmt: skip
    assert info.value.code == "role_not_held"
    assert (await env.count(TransitionRow), await env.count(OutboxRow)) == (trail, outbox)
    async with env.sessions() as session:
        row = (await session.execute(select(CaseRow).where(CaseRow.number == n))).scalar_one()
    assert row.state == "screening" and row.version == 1


async def test_a_failing_hook_rolls_back_the_transition(env: Env):
    n = await submit(env)

    async def broken(uow, events):
        await uow.outbox.add(OutgoingMessage(channel="t", chat_id="1", payload={}))
        raise RuntimeError("renderer exploded")

    env.wf.on_events = broken
    with pytest.raises(RuntimeError):
        await env.wf.handle(env.uow(), ValidateCase(
            case_number=n, actor=env.who("P-L-01", Role.GRID_LEADER)))  # fmt: skip
    async with env.sessions() as session:
        row = (await session.execute(select(CaseRow).where(CaseRow.number == n))).scalar_one()
    assert row.state == "screening"
    assert await env.count(OutboxRow) == 2  # only the submit's two events


async def test_stale_writer_is_refused(env: Env):
    n = await submit(env)
    leader = env.who("P-L-01", Role.GRID_LEADER)
    # Two units of work load the same version; the second save must not overwrite the first.
    from workflow.machine import fire

    first, second = env.uow(), env.uow()
    async with first, second:
        a, b = await first.cases.get(n), await second.cases.get(n)
        cal = await first.calendar.load()
        kw = {"policy": env.wf.policy, "calendar": cal, "now": env.clock.now()}
        actor = await first.org.actor(leader.person_id, Role.GRID_LEADER)
        fire(a, Action.SCREEN_VALID, actor, {}, **kw)
        await first.cases.save(a)
        await first.commit()
        fire(b, Action.SCREEN_INVALID, actor, {"reason": "x"}, **kw)
        with pytest.raises(ConcurrentUpdate):
            await second.cases.save(b)
    async with env.sessions() as session:
        row = (await session.execute(select(CaseRow).where(CaseRow.number == n))).scalar_one()
    assert row.state == "township"


async def test_numbers_are_sequential_per_day_and_unique(env: Env):
    numbers = [await submit(env) for _ in range(3)]
    assert numbers == [f"JL-20261123-000{i}" for i in (1, 2, 3)]
    env.clock.advance(hours=15)  # 2026-11-24 00:00 in Shanghai
    assert await submit(env) == "JL-20261124-0001"


async def test_concurrent_submissions_get_distinct_numbers(env: Env):
    numbers = await asyncio.gather(*(submit(env) for _ in range(8)))
    assert len(set(numbers)) == 8


async def test_duplicate_links_both_ways_in_the_trail(env: Env):
    first, second = await submit(env), await submit(env)
    leader = env.who("P-L-01", Role.GRID_LEADER)
    cmd = MarkDuplicate(case_number=second, actor=leader, duplicate_of=first)
    await env.wf.handle(env.uow(), cmd)
    async with env.sessions() as session:
        original = await case_view(session, first)
        dup = await case_view(session, second)
    assert dup.case.state is State.DUPLICATE and dup.case.duplicate_of == first
    assert original.timeline[-1].data == {"duplicate": second}


async def test_new_schedule_recomputes_open_deadlines(env: Env):
    env.clock.set(datetime(2026, 12, 29, 10, 0, tzinfo=SHANGHAI))
    n = await submit(env)
    async with env.uow() as uow:
        case = await uow.cases.get(n)
    assert case.due_provisional and case.due_at.astimezone(SHANGHAI).date() == date(2027, 1, 7)
    async with env.sessions() as session:
        await store_schedule(
            session,
            Schedule(2027, holidays={date(2027, 1, 1): "元旦", date(2027, 1, 4): "test"}),
            source="test",
            now=env.clock.now(),
        )
        await session.commit()
    env.uow.calendar_cache.invalidate()
    assert await env.wf.recompute_deadlines(env.uow()) == 1
    async with env.uow() as uow:
        case = await uow.cases.get(n)
    assert not case.due_provisional and case.due_at.astimezone(SHANGHAI).date() == date(2027, 1, 11)


async def test_case_list_newest_first(env: Env):
    a = await submit(env)
    env.clock.advance(minutes=1)
    b = await submit(env)
    async with env.sessions() as session:
        rows = await case_list(session)
        screening = await case_list(session, state="closed")
    assert [r["case"].number for r in rows] == [b, a]
    assert rows[0]["grid"]["code"] == "JL-XGC-01-G1" and screening == []
