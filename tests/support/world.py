"""The `world` fixture: the example county with staff chats 7001-7004, resident 5001 and the
housing department's group -100; `enrol_workers` adds grid workers 8001/8002 and group -200."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from handlers.notify import Notifier
from storage.calendar import seed_calendar
from storage.channel import SqlChannelStore
from storage.db import session_factory
from storage.invites import create_invite
from storage.org_file import load_org_file
from storage.rows import PersonRow
from storage.uow import UnitOfWorkFactory
from tests.support.paths import EXAMPLE_COUNTY
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

STAFF = {"P-L-01": "7001", "P-T-01": "7002", "P-C-01": "7003", "P-H-02": "7004"}


@pytest.fixture
async def world(engine, clock):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    async with sessions() as session:
        store = SqlChannelStore(session)
        for code, chat in STAFF.items():
            invite = await create_invite(
                session, purpose="enrol", person_code=code, now=clock.now()
            )
            await store.redeem_invite(invite.code, "telegram", chat, code, chat, clock.now())
        grid = await store.place_by_code("JL-XGC-01-G1")
        resident = await store.enrol_resident("telegram", "5001", "李秀兰", "zh_CN", grid.id,
                                              clock.now())  # fmt: skip
        group = await create_invite(session, purpose="bind_chat", chat_purpose="department",
                                    department_code="housing", now=clock.now())  # fmt: skip
        await store.redeem_invite(group.code, "telegram", "7004", "罗斌", "-100", clock.now())
        people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
        await session.commit()
    uow = UnitOfWorkFactory(sessions, clock)
    return {"uow": uow, "sessions": sessions, "resident": resident.id, "people": people,
            "wf": Workflow(WorkflowPolicy(), on_events=Notifier())}  # fmt: skip


WORKER_GROUP = "-200"


async def enrol_workers(w) -> None:
    async with w["sessions"]() as session:
        store = SqlChannelStore(session)
        now = w["uow"].clock.now()
        for code, user in (("P-W-01", "8001"), ("P-W-02", "8002")):
            invite = await create_invite(session, purpose="enrol", person_code=code, now=now)
            await store.redeem_invite(invite.code, "telegram", user, code, user, now)
        for grid in ("JL-XGC-01-G1", "JL-XGC-01-G2"):
            bind = await create_invite(session, purpose="bind_chat", chat_purpose="grid",
                                       area_code=grid, now=now)  # fmt: skip
            await store.redeem_invite(bind.code, "telegram", "8001", "w", WORKER_GROUP, now)
        await session.commit()
