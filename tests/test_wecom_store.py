"""storage/wecom.py on SQLite and PostgreSQL: a card's newest update code (each spent once),
units by code, their members with a WeCom account, and a group chat bound once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.org_file import load_org_file
from storage.wecom import WeComStore
from tests.conftest import EXAMPLE_COUNTY

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


async def test_a_cards_code_is_the_newest_and_is_spent_once(engine: AsyncEngine):
    store = WeComStore(session_factory(engine), "wecom:ww1:1000002")
    other = WeComStore(session_factory(engine), "wecom:ww1:1000003")  # another app
    await store.card_code("r1-a", "LuoBin", "RC-sent", NOW)
    await store.card_code("r1-a", "LuoBin", "RC-press", NOW + timedelta(minutes=1))
    assert await store.code_of("r1-a") == ("LuoBin", "RC-press", NOW + timedelta(minutes=1))
    assert await other.code_of("r1-a") is None
    await store.spend("r1-a", "RC-sent")  # an older code spent: the newer one stays
    assert (await store.code_of("r1-a") or ("", "", NOW))[1] == "RC-press"
    await store.spend("r1-a", "RC-press")
    assert await store.code_of("r1-a") is None


async def test_units_members_and_group_chats(engine: AsyncEngine):
    sessions = session_factory(engine)
    await load_org_file(sessions, EXAMPLE_COUNTY)
    store = WeComStore(sessions, "wecom:ww1:1000002")
    grid = await store.unit("JL-CG-01-G1")
    assert grid is not None and (grid.purpose, grid.name) == ("grid", "东关社区第一网格")
    assert await store.members(grid) == ["ZhaoMin", "HuChunMei"]  # worker, leader: file order
    township = await store.unit("JL-CG")
    assert township is not None and await store.members(township) == ["HeXiaoYan"]
    housing = await store.unit("housing")
    assert housing is not None and housing.purpose == "department"
    assert await store.members(housing) == []
    assert (await store.unit("county")) is not None and await store.unit("NO-SUCH") is None
    assert len(grid.chatid) <= 32 and grid.chatid.isalnum() and grid.chatid != township.chatid
    assert await store.bind(grid, f"appchat:{grid.chatid}", NOW)
    assert not await store.bind(grid, f"appchat:{grid.chatid}", NOW)
