"""The dashboard's `site` fixture: the example county with four cases made through the real
workflow (closed with photos, anonymous, supervised, a spreadsheet formula)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import App
from bot.config import Settings
from bot.web.dashboard.app import setup_dashboard
from bot.web.dashboard.users import add_user
from handlers.render import Renderer
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.rows import PersonRow
from storage.uow import UnitOfWorkFactory
from tests.support.images import encode
from tests.support.paths import EXAMPLE_COUNTY
from workflow.clock import ManualClock
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    PassUp,
    RateCase,
    ResolveCase,
    SubmitCase,
    SuperviseCase,
    ValidateCase,
)
from workflow.model import Role
from workflow.services import Workflow

PASSWORD = "grid-screen-2026"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example","点我")'


@dataclass
class Site:
    app: App
    clock: ManualClock
    people: dict[str, int]
    cases: dict[str, str] = field(default_factory=dict)
    photos: dict[str, str] = field(default_factory=dict)

    def who(self, code: str, role: Role) -> ActorRef:
        return ActorRef(self.people[code], role)

    async def run(self, *commands: Any) -> None:
        for cmd in commands:
            self.clock.advance(minutes=30, seconds=7)
            await self.app.workflow.handle(self.app.uow(), cmd)

    async def photo(self, data: bytes) -> tuple[int, str]:
        async with self.app.sessions() as session:
            row = await self.app.media.save_photo(session, data, now=self.clock.now())
            await session.commit()
            return row.id, row.public_sha256

    async def user(self, username: str = "leader", password: str = PASSWORD, **kw: Any) -> None:
        async with self.app.uow() as uow:
            await add_user(uow.accounts, username, password, now=self.clock.now(), **kw)
            await uow.commit()

    def client(self, *, require_login: bool = True) -> TestClient:
        web_app = web.Application()
        setup_dashboard(web_app, self.app, require_login=require_login)
        return TestClient(TestServer(web_app))


@pytest.fixture
async def site(engine, clock, tmp_path: Path) -> Site:
    """The example county with four cases made through the real workflow (see each below)."""
    settings = Settings(data_dir=tmp_path)
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    async with sessions() as session:
        people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
    app = App(
        settings=settings,
        engine=engine,
        sessions=sessions,
        clock=clock,
        uow=UnitOfWorkFactory(sessions, clock),
        workflow=Workflow(settings.workflow.policy()),
        media=MediaStore(tmp_path / "media"),
        renderer=Renderer(),
    )
    s = Site(app, clock, people)
    wf, uow = app.workflow, app.uow
    resident, anonymous = s.who("P-R-01", Role.RESIDENT), s.who("P-R-02", Role.RESIDENT)
    handler = s.who("P-H-02", Role.DEPARTMENT_HANDLER)

    # closed: the whole loop in Xiguocheng, housing, with a photo before and one after
    before_id, s.photos["before"] = await s.photo(encode("PNG"))
    after_id, s.photos["after"] = await s.photo(encode("JPEG", quality=80))
    s.cases["closed"] = n = await wf.submit(uow(), SubmitCase(
        actor=resident, grid_code="JL-XGC-01-G1", category_code="safety",
        description="水库护网破损", attachment_ids=(before_id,), contact_phone="13800000001",
    ))  # fmt: skip
    await s.run(
        ValidateCase(case_number=n, actor=s.who("P-L-01", Role.GRID_LEADER)),
        PassUp(case_number=n, actor=s.who("P-T-01", Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=n, actor=s.who("P-C-01", Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        AcceptCase(case_number=n, actor=handler),
        ResolveCase(case_number=n, actor=handler, text="已修复", attachment_ids=(after_id,)),
        RateCase(case_number=n, actor=resident, rating="satisfied"),
    )  # fmt: skip
    # anonymous, still with the grid leader in Chengguan; its text is a script
    s.cases["anonymous"] = await wf.submit(uow(), SubmitCase(
        actor=anonymous, grid_code="JL-CG-01-G2", category_code="sanitation",
        description=SCRIPT, anonymous=True, contact_phone="13900000002",
    ))  # fmt: skip
    # assigned to housing and supervised, not accepted; its text breaks out of an attribute
    s.cases["supervised"] = n = await wf.submit(uow(), SubmitCase(
        actor=resident, grid_code="JL-XGC-01-G1", category_code="dispute", description=IMG,
    ))  # fmt: skip
    await s.run(
        ValidateCase(case_number=n, actor=s.who("P-L-01", Role.GRID_LEADER)),
        PassUp(case_number=n, actor=s.who("P-T-01", Role.TOWNSHIP_OPERATOR)),
        AssignCase(case_number=n, actor=s.who("P-C-01", Role.COUNTY_DISPATCHER),
                   department_code="housing"),
        SuperviseCase(case_number=n, actor=s.who("P-S-01", Role.SUPERVISOR),
                      instruction="请今日签收 <b>督办</b>"),
    )  # fmt: skip
    # a grid worker's report whose text a spreadsheet would run as a formula
    s.cases["formula"] = await wf.submit(uow(), SubmitCase(
        actor=s.who("P-W-01", Role.GRID_WORKER), grid_code="JL-XGC-01-G1",
        category_code="piling", description=FORMULA,
    ))  # fmt: skip
    return s


async def csrf_of(client: TestClient, path: str = "/dashboard/login") -> str:
    page = await client.get(path, allow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token, "the page has no CSRF field"
    return token.group(1)
