"""A case card is built once per transaction and again only after the case is written
(storage/case_memo.py); its names come from the process's org copy and follow `org load`
(storage/org_names.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.queries import case_view
from storage.rows import PersonRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from tests.support.engines import counting
from workflow.commands import ActorRef, SubmitCase
from workflow.model import Role
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow


class Env:
    """The example county, one process's unit-of-work factory, and a resident to report."""

    def __init__(self, engine: AsyncEngine, clock) -> None:  # type: ignore[no-untyped-def]
        self.sessions = session_factory(engine)
        self.clock = clock
        self.uow = UnitOfWorkFactory(self.sessions, clock)

    async def setup(self) -> None:
        async with self.sessions() as session:
            await seed_calendar(session, self.clock.now())
            await session.commit()
        await load_org_file(self.sessions, EXAMPLE_COUNTY)


@pytest.fixture
async def env(engine, clock):  # type: ignore[no-untyped-def]
    e = Env(engine, clock)
    await e.setup()
    return e


async def submit(env: Env) -> str:
    async with env.sessions() as session:
        resident = (
            await session.execute(select(PersonRow.id).where(PersonRow.code == "P-R-01"))
        ).scalar_one()
    cmd = SubmitCase(
        actor=ActorRef(resident, Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="井盖破损",
    )  # fmt: skip
    return await Workflow(WorkflowPolicy()).submit(env.uow(), cmd)


async def test_the_card_is_read_once_until_the_case_is_written(engine, env: Env):
    number = await submit(env)
    async with env.uow() as uow:  # the process learns the names
        await uow.channels.case_card(number)
    async with env.uow() as uow:
        with counting(engine) as statements:
            first = await uow.channels.case_card(number)
            again = await uow.channels.case_card(number)
        # the org generation, the case, its trail; names from the process's copy
        assert again == first and len(statements) == 3
        case = await uow.cases.get(number)
        case.description = "井盖已经被人挪走"
        await uow.cases.save(case)
        with counting(engine) as statements:
            changed = await uow.channels.case_card(number)
            assert await uow.cases.get(number) == case  # as written, not read back
        assert changed.description == "井盖已经被人挪走" and changed.state == first.state
        assert len(statements) == 1  # the trail; the case is the one this transaction wrote
    async with env.uow() as uow:  # that one was rolled back: the next one reads afresh
        assert (await uow.channels.case_card(number)).description == first.description


async def test_the_cards_names_are_the_views_and_follow_an_org_load(env: Env, tmp_path: Path):
    number = await submit(env)
    async with env.uow() as uow:
        card = await uow.channels.case_card(number)
        view = await case_view(uow.session, number)  # the dashboard's: straight from SQL
    assert (card.category, card.grid, card.village, card.township) == (
        view.category, view.grid, view.village, view.township,
    )  # fmt: skip
    assert [d.name for d in card.proposed_departments] == ["住房和城乡建设局", "水利局"]

    renamed = tmp_path / "county.yaml"
    renamed.write_text(
        EXAMPLE_COUNTY.read_text(encoding="utf-8")
        .replace("住房和城乡建设局", "住建局")
        .replace("安全隐患", "安全风险"),
        encoding="utf-8",
    )
    await load_org_file(env.sessions, renamed)  # `shuoshi org load`, maybe in another process
    async with env.uow() as uow:
        card = await uow.channels.case_card(number)
    assert [d.name for d in card.proposed_departments] == ["住建局", "水利局"]
    assert card.category["zh_CN"] == "安全风险"
