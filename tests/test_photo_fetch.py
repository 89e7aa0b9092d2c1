"""A photo is downloaded, decoded and written before its turn's transaction opens, so no
database connection (on SQLite: the one writer) waits on the network or on Pillow."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from handlers.conversation import Conversations
from handlers.messages import Incoming, Outgoing, PhotoRef
from handlers.routes import ALL_ROUTES
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.media import MediaStore, StoredPhoto
from storage.org_file import load_org_file
from storage.rows import ConversationRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from tests.support.images import png
from tests.support.texts import refusal
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow


class FetchingPhotos:
    """The channel's download, noting how many database connections were out at the time."""

    def __init__(self, engine, media: MediaStore) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.media = media
        self.connections_while_fetching: list[int] = []
        self.files = {"red": png("red"), "blue": png("blue"), "junk": b"not an image"}

    async def fetch(self, channel: str, ref: PhotoRef) -> StoredPhoto:
        self.connections_while_fetching.append(self.engine.sync_engine.pool.checkedout())
        return await self.media.store_photo(
            self.files[ref.file_id], channel=channel, channel_file_id=ref.file_id
        )

    async def save_fetched(self, uow, fetched: StoredPhoto) -> int:  # type: ignore[no-untyped-def]
        return (await self.media.add_photo_row(uow.session, fetched, now=uow.clock.now())).id

    async def save(self, uow, channel: str, ref: PhotoRef) -> int:  # type: ignore[no-untyped-def]
        return await self.save_fetched(uow, await self.fetch(channel, ref))


async def test_photos_are_fetched_before_the_transaction(engine, clock, tmp_path: Path):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    photos = FetchingPhotos(engine, MediaStore(tmp_path / "media"))
    bot = Conversations(
        UnitOfWorkFactory(sessions, clock), Workflow(WorkflowPolicy()), photos, ALL_ROUTES
    )
    n = 0

    async def send(**kw) -> list[Outgoing]:  # type: ignore[no-untyped-def]
        nonlocal n
        n += 1
        return await bot.handle(
            Incoming(
                channel="telegram", chat_id="5001", chat_type="private", user_id="5001",
                user_name="居民", language="zh-hans", message_id=str(n), update_key=f"u{n}",
                **kw,
            )
        )  # fmt: skip

    await send(text="/start JL-XGC-01-G1")
    out = await send(text="📝 我要说事")
    data = next(b.data for m in out for row in m.buttons for b in row if b.data.startswith("cat:"))
    await send(callback_data=data, callback_id="cb1")
    await send(text="东门井盖破损")
    await send(photos=(PhotoRef("red", size=100),), media_group_id="g1")
    await send(photos=(PhotoRef("blue", size=100),), media_group_id="g1")
    assert photos.connections_while_fetching == [0, 0]
    async with sessions() as session:
        draft = (await session.execute(select(ConversationRow.draft))).scalar_one()
    assert len(draft["photo_ids"]) == 2

    out = await send(photos=(PhotoRef("junk", size=12),))  # refused while fetched ahead
    assert photos.connections_while_fetching == [0, 0, 0]
    assert out and refusal("not_an_image", format="TEXT") in out[0].text
    async with sessions() as session:
        draft = (await session.execute(select(ConversationRow.draft))).scalar_one()
    assert len(draft["photo_ids"]) == 2
