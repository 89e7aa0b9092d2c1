"""Each process's copy of grids, categories and the calendar follows `org load` and
`calendar load`, whichever process ran them (storage/org_cache.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import event

from handlers.conversation import Conversations
from handlers.messages import Incoming, Outgoing
from handlers.routes import ALL_ROUTES
from storage.calendar import Schedule, seed_calendar, store_schedule
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from tests.support.chat import Photos
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow


class Process:
    """One `shuoshi run`: its own unit-of-work factory, so its own copy of the organisation."""

    def __init__(self, engine, clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        self.uows = UnitOfWorkFactory(session_factory(engine), clock)
        self.bot = Conversations(
            self.uows, Workflow(WorkflowPolicy()), Photos(MediaStore(tmp_path / "media")),
            ALL_ROUTES,
        )  # fmt: skip
        self.n = 0

    async def send(self, user: str, text: str) -> list[Outgoing]:
        self.n += 1
        return await self.bot.handle(
            Incoming(
                channel="telegram", chat_id=user, chat_type="private", user_id=user,
                user_name="居民", language="zh-hans", message_id=str(self.n),
                update_key=f"{id(self)}:{self.n}", text=text,
            )
        )  # fmt: skip


def category_labels(out: list[Outgoing]) -> list[str]:
    return [b.text for m in out for row in m.buttons for b in row if b.data.startswith("cat:")]


async def test_org_load_elsewhere_renames_a_category_for_the_next_report(
    engine, clock, tmp_path: Path
):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    running = Process(engine, clock, tmp_path)
    await running.send("7001", "/start JL-XGC-01-G1")
    assert "安全隐患" in category_labels(await running.send("7001", "📝 我要说事"))

    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    await running.send("7002", "/start JL-XGC-01-G1")
    await running.send("7002", "📝 我要说事")
    assert not any("FROM categories" in s for s in statements)  # served from the copy

    renamed = tmp_path / "county.yaml"
    renamed.write_text(
        EXAMPLE_COUNTY.read_text(encoding="utf-8").replace("安全隐患", "安全风险"),
        encoding="utf-8",
    )
    await load_org_file(sessions, renamed)  # `shuoshi org load` in another process
    await running.send("7003", "/start JL-XGC-01-G1")
    labels = category_labels(await running.send("7003", "📝 我要说事"))
    assert "安全风险" in labels and "安全隐患" not in labels


async def test_calendar_load_elsewhere_changes_the_next_deadline(engine, clock, tmp_path: Path):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    running = Process(engine, clock, tmp_path)
    async with running.uows() as uow:
        before = await uow.calendar.load()
    year = clock.now().year + 5  # a year no schedule names yet
    async with sessions() as session:  # `shuoshi calendar load` in another process
        await store_schedule(
            session,
            Schedule(year, holidays={date(year, 3, 3): "test holiday"}),
            source="test",
            now=clock.now(),
        )
        await session.commit()
    async with running.uows() as uow:
        after = await uow.calendar.load()
    assert year not in before.known_years
    assert year in after.known_years and date(year, 3, 3) in after.holidays
