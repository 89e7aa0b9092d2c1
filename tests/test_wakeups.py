"""Wake-ups across processes (storage/wakeups.py, docs/scaling.md): on PostgreSQL a commit in
one process wakes the web chat streams and the senders of another through LISTEN/NOTIFY, the
listener comes back after losing its connection, and streams poll while it is away; on SQLite
(one process) the same wake-ups stay in the process. Two processes are two App instances, each
on its own engine (its own connections), as two `shuoshi run` processes would be."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from sqlalchemy import insert, text

from bot import runner
from bot.app import App, open_app
from bot.config import load_settings
from bot.runner import wake_on
from bot.telegram.sender import OutboxSender
from bot.web.chat.app import setup_webchat
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.rows import OutboxRow, WebMessageRow
from storage.sql import table_of
from storage.uow import UnitOfWorkFactory
from storage.wakeups import Wakeups, listen, outbox_topic
from tests.conftest import PG_SKIP_REASON, PG_URL
from tests.support.engines import another_engine
from tests.support.net import STOP_SECONDS, free_port
from tests.support.outbox import queue
from tests.support.paths import EXAMPLE_COUNTY
from tests.support.webchat import Browser, make_app, serve

# Far beyond every bounded wait below: a message that arrives came through a wake-up.
NEVER = 3600.0


def other_process(app: App, engine) -> App:
    """The same deployment seen from another process: own engine, pool and wake-up hub."""
    sessions = session_factory(engine)
    return replace(app, engine=engine, sessions=sessions,
                   uow=UnitOfWorkFactory(sessions, app.clock))  # fmt: skip


@contextlib.asynccontextmanager
async def listening(engine, hub: Wakeups, **options: float) -> AsyncIterator[asyncio.Task[None]]:
    """A process's listener, connected (its hub says so) before the block starts."""
    task = asyncio.create_task(listen(engine, hub, **options))
    try:
        await until_live(hub, True)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until_live(hub: Wakeups, live: bool) -> None:
    async with asyncio.timeout(10):
        while hub.live != live:
            hub.changed.clear()
            await hub.changed.wait()


def postgresql_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY crosses processes on PostgreSQL; SQLite has one process")


async def two_browsers(a_client, b_client) -> tuple[Browser, Browser, str]:
    """A new resident's chat, made through B; A opens the same chat (another tab, served by
    another process behind the load balancer)."""
    b = Browser(b_client)
    chat = await b.pick(grid="")
    a = Browser(a_client)
    await a.open(f"/chat/{chat}")
    return a, b, chat


async def test_a_stream_held_by_one_process_shows_a_message_taken_by_another(
    engine, tmp_path, clock
):
    postgresql_only(engine)
    app_a = await make_app(engine, tmp_path, clock)
    other = await another_engine(engine)
    app_b = other_process(app_a, other)
    try:
        async with listening(engine, app_a.uow.wakeups):
            async for a_client, a_chat in serve(app_a, demo=True):
                async for b_client, _ in serve(app_b, demo=True):
                    a, b, _chat = await two_browsers(a_client, b_client)
                    a_chat.keepalive_seconds = NEVER  # only a wake-up can bring it now
                    stream = await a.stream(after=await a.last_id())
                    started = time.perf_counter()
                    await b.say("楼道灯坏了")  # taken, answered and delivered by B
                    said = await asyncio.wait_for(stream.until(lambda v: v["direction"] == "in"), 5)
                    answer = await asyncio.wait_for(
                        stream.until(lambda v: v["direction"] == "out"), 5
                    )
                    elapsed = time.perf_counter() - started
                    stream.close()
    finally:
        await other.dispose()
    assert said["preview"] == "楼道灯坏了"
    assert answer["id"] > said["id"]
    assert elapsed < 5, elapsed


async def test_streams_poll_while_the_listener_is_away(engine, tmp_path, clock, monkeypatch):
    postgresql_only(engine)
    monkeypatch.setattr("bot.web.chat.app.POLL_SECONDS", 0.2)
    app_a = await make_app(engine, tmp_path, clock)
    other = await another_engine(engine)
    app_b = other_process(app_a, other)
    try:
        async for a_client, a_chat in serve(app_a, demo=True):
            async for b_client, _ in serve(app_b, demo=True):
                a, b, _chat = await two_browsers(a_client, b_client)
                a_chat.keepalive_seconds = NEVER
                app_a.uow.wakeups.set_live(False)  # as while the listener reconnects
                stream = await a.stream(after=await a.last_id())
                await b.say("还在吗")
                said = await asyncio.wait_for(stream.until(lambda v: v["direction"] == "in"), 5)
                stream.close()
    finally:
        await other.dispose()
    assert said["preview"] == "还在吗"


async def test_the_listener_comes_back_after_losing_its_connection(engine, world):
    postgresql_only(engine)
    other = await another_engine(engine)
    here = world["uow"].wakeups
    heard: asyncio.Queue[str] = asyncio.Queue()
    here.subscribe(heard.put_nowait)
    there = UnitOfWorkFactory(session_factory(other), world["uow"].clock)
    try:
        async with listening(engine, here, retry_seconds=0.05, check_seconds=NEVER):
            await heard.get()  # "*": connected, reread everything
            async with other.begin() as conn:
                killed = await conn.execute(TERMINATE_LISTENER)
            assert killed.scalar_one() == 1
            await until_live(here, False)
            await until_live(here, True)  # reconnected by itself
            assert await asyncio.wait_for(heard.get(), 5) == "*"
            await queue({"uow": there}, "5001", "after the reconnect")
            assert await asyncio.wait_for(heard.get(), 5) == outbox_topic("telegram")
    finally:
        await other.dispose()


def _outbox_row(channel: str, chat: str, now) -> dict:  # type: ignore[no-untyped-def]
    return {"channel": channel, "chat_id": chat, "payload": {"text": "hi"}, "status": "pending",
            "attempts": 0, "created_at": now, "next_attempt_at": now}  # fmt: skip


def _web_message(chat: str, now) -> dict:  # type: ignore[no-untyped-def]
    return {"chat_id": chat, "direction": "in", "payload": {"text": "hi"}, "created_at": now}


async def test_the_database_wakes_listeners_for_every_insert_without_a_notify_of_ours(
    engine, clock
):
    """Migration 0014's triggers: rows inserted by any statement of any session (no unit of
    work, so nothing of ours announces them) wake the listeners on commit, each topic once per
    transaction, and a rolled-back insert wakes nobody."""
    postgresql_only(engine)
    hub = Wakeups()  # a hub only the database talks to
    heard: asyncio.Queue[str] = asyncio.Queue()
    hub.subscribe(heard.put_nowait)
    now = clock.now()
    outbox, web = table_of(OutboxRow), table_of(WebMessageRow)
    sessions = session_factory(engine)
    async with listening(engine, hub):
        assert await heard.get() == "*"
        async with sessions() as session:
            await session.execute(
                insert(outbox),
                [_outbox_row("telegram", "5001", now), _outbox_row("telegram", "5002", now),
                 _outbox_row("wecom", "u1", now)],
            )  # fmt: skip
            await session.execute(insert(outbox), [_outbox_row("telegram", "5003", now)])
            await session.execute(insert(web), [_web_message("r-a", now)])
            await session.commit()
        async with sessions() as session:
            await session.execute(insert(outbox), [_outbox_row("wechat", "o1", now)])
            await session.execute(insert(web), [_web_message("r-b", now)])
            await session.rollback()
        async with sessions() as session:  # notifications come in commit order: the last
            await session.execute(insert(web), [_web_message("r-last", now)])
            await session.commit()
        topics = []
        while not topics or topics[-1] != "web:r-last":
            topics.append(await asyncio.wait_for(heard.get(), 5))
    assert sorted(topics[:-1]) == ["outbox:telegram", "outbox:wecom", "web:r-a"]


@contextlib.asynccontextmanager
async def idle(sender: OutboxSender, hub: Wakeups) -> AsyncIterator[None]:
    """The sender running as `shuoshi run` has it (woken by its channel's topic), its first
    pass over (nothing to send), so it waits for a wake-up that only a commit can give."""
    passes: asyncio.Queue[int] = asyncio.Queue()
    one_pass = sender.deliver_pending

    async def counted(limit: int | None = None, *, paced: bool = False) -> int:
        sent = await one_pass(limit, paced=paced)
        passes.put_nowait(sent)
        return sent

    sender.deliver_pending = counted  # type: ignore[method-assign]
    running = asyncio.create_task(sender.run(idle_seconds=NEVER))
    try:
        assert await asyncio.wait_for(passes.get(), 5) == 0
        stop = wake_on(hub, "telegram", sender.wake)
        yield
        stop()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


TERMINATE_LISTENER = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE query LIKE 'LISTEN %shuoshi.' || current_schema() || '%' AND pid <> pg_backend_pid()"
)


async def test_rows_written_by_another_process_wake_the_sender_at_once(engine, world, fake, media):
    postgresql_only(engine)
    other = await another_engine(engine)
    there = {"uow": UnitOfWorkFactory(session_factory(other), world["uow"].clock)}
    sender = OutboxSender(fake.make_bot(), world["sessions"], media, world["uow"].clock)
    try:
        async with listening(engine, world["uow"].wakeups), idle(sender, world["uow"].wakeups):
            await queue(there, "5001", "from the intake process")
            sent = await fake.wait_sent(5001, 1, timeout=5)
    finally:
        await other.dispose()
    assert [m["text"] for m in sent] == ["from the intake process"]


async def test_one_process_wakes_its_own_streams_and_senders(engine, world, fake, media):
    """SQLite and PostgreSQL alike: a commit wakes this process's subscribers right after it,
    whatever wrote it (here a row for the Telegram sender, written outside any channel)."""
    sender = OutboxSender(fake.make_bot(), world["sessions"], media, world["uow"].clock)
    async with idle(sender, world["uow"].wakeups):
        await queue(world, "5001", "from this process")
        sent = await fake.wait_sent(5001, 1, timeout=5)
    assert [m["text"] for m in sent] == ["from this process"]


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A database of its own on the test server (`shuoshi run` takes a URL, not a schema)."""
    import asyncpg

    admin = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"shuoshi_wake_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_two_shuoshi_run_processes_wake_each_others_streams(tmp_path, monkeypatch):
    """`serve` as `shuoshi run` runs it, twice on one PostgreSQL database (roles web): it
    starts the listener by itself, so a stream held by one shows what the other took."""
    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    monkeypatch.chdir(tmp_path)

    def without_keepalive(*args, **kwargs):  # only a wake-up can bring the message now
        chat = setup_webchat(*args, **kwargs)
        chat.keepalive_seconds = NEVER
        return chat

    monkeypatch.setattr("bot.runner.setup_webchat", without_keepalive)
    async with fresh_database() as url:
        processes = []
        try:
            for _ in range(2):
                settings = load_settings(
                    data_dir=tmp_path / "data", database_url=url, example_county=EXAMPLE_COUNTY,
                    web={"port": free_port()}, process={"roles": ["web"]},
                )  # fmt: skip
                app = await open_app(settings)
                if not processes:
                    await load_org_file(app.sessions, EXAMPLE_COUNTY)
                started = asyncio.Event()
                stop = asyncio.Event()
                task = asyncio.create_task(
                    runner.serve(app, stop, on_ready=lambda _running, ready=started: ready.set())
                )
                await asyncio.wait_for(started.wait(), 30)  # its port is open
                processes.append((app, stop, task))
            for app, _, _ in processes:
                await until_live(app.uow.wakeups, True)  # each process's listener is up
            a_http, b_http = (
                aiohttp.ClientSession(
                    base_url=f"http://127.0.0.1:{app.settings.web.port}",
                    cookie_jar=aiohttp.CookieJar(unsafe=True),
                )
                for app, _, _ in processes
            )
            async with a_http, b_http:
                a, b, _chat = await two_browsers(a_http, b_http)
                stream = await a.stream(after=await a.last_id())
                await b.say("电梯停了")
                said = await asyncio.wait_for(stream.until(lambda v: v["direction"] == "in"), 5)
                stream.close()
        finally:
            for app, stop, task in processes:
                stop.set()
                await asyncio.wait_for(task, STOP_SECONDS)
                await app.close()
    assert said["preview"] == "电梯停了"
