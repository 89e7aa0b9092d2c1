"""storage/wechat.py on SQLite and PostgreSQL: the shared token, the 48-hour window's clock,
the options a chat was offered, the web chat of a follower."""

from __future__ import annotations

from datetime import timedelta

from storage.channel import SqlChannelStore
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.outbox import SqlOutbox
from storage.wechat import WeChatStore
from tests.support.paths import EXAMPLE_COUNTY
from workflow.ports import OutgoingMessage


async def test_token_is_upserted_forgotten_only_when_unchanged_and_expires(engine, clock):
    store = WeChatStore(session_factory(engine), "mp:wx1", "wechat")
    now = clock.now()
    assert await store.token(now) is None
    await store.save_token("A", now + timedelta(hours=2), now)
    await store.save_token("B", now + timedelta(hours=2), now)  # a refresh replaces it
    assert await store.token(now) == "B"
    assert await store.token(now + timedelta(hours=2)) is None  # expired by then
    await store.forget_token("A")  # an old token refused: the newer one stays
    assert await store.token(now) == "B"
    await store.forget_token("B")
    assert await store.token(now) is None


async def test_last_inbound_only_moves_forward(engine, clock):
    store = WeChatStore(session_factory(engine), "mp:wx1", "wechat")
    now = clock.now()
    await store.touch("o-1", now)
    await store.touch("o-1", now - timedelta(hours=1))  # a late retry of an older message
    assert await store.last_inbound("o-1") == now
    await store.touch("o-1", now + timedelta(hours=3))
    assert await store.last_inbound("o-1") == now + timedelta(hours=3)
    assert await store.last_inbound("o-2") is None


async def test_offered_options_and_the_followers_web_chat(engine, clock):
    sessions = session_factory(engine)
    store = WeChatStore(sessions, "mp:wx1", "wechat")
    await load_org_file(sessions, EXAMPLE_COUNTY)
    async with sessions() as session:
        outbox = SqlOutbox(session, clock)
        for text, buttons in (("a", [[{"text": "1", "data": "x:1"}]]), ("b", [])):
            payload = {"text": text, "buttons": buttons}
            await outbox.add(OutgoingMessage(channel="wechat", chat_id="o-1", payload=payload))
        grid = await SqlChannelStore(session).place_by_code("JL-XGC-01-G1")
        await SqlChannelStore(session).enrol_resident(
            "wechat", "o-1", "-", "zh_CN", grid.id, clock.now()
        )
        await session.commit()
    # A typed number picks from the latest message only (b offers none); a clicked option
    # names its own message.
    assert await store.offered("o-1") == []
    first = await store.offered("o-1", row_id=1)
    assert [o["data"] for o in first] == ["x:1"]
    assert await store.offered("o-2") == []
    assert await store.web_chat_of("o-1", clock.now(), create=False) is None
    chat = await store.web_chat_of("o-1", clock.now(), create=True)
    assert chat is not None and chat.startswith("r-")
    assert await store.web_chat_of("o-1", clock.now(), create=True) == chat
    assert await store.web_chat_of("o-unknown", clock.now(), create=True) is None
