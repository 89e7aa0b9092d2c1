"""SQLite's one writer, taken in turn inside the process (storage/sqlite_driver.py)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from storage import write_lock
from storage.db import create_engine, session_factory
from storage.uow import UnitOfWorkFactory
from workflow.clock import SystemClock

meta = MetaData()
notes = Table("notes", meta, Column("id", Integer, primary_key=True), Column("text", String))


async def until(condition) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until the condition holds (connecting takes aiosqlite's thread)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


@pytest.fixture
async def sqlite(tmp_path: Path):
    # No busy timeout at all: a second writer SQLite itself let in would fail at once.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db", connect_args={"timeout": 0})
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    yield engine
    await engine.dispose()


async def test_concurrent_write_transactions_wait_their_turn_in_order(sqlite):
    sessions = session_factory(sqlite)
    first = sessions()
    await first.execute(insert(notes).values(text="first"))  # holds the writer
    order: list[str] = []

    async def write(text: str) -> None:
        async with sessions() as session:
            await session.execute(insert(notes).values(text=text))
            order.append(text)
            await session.commit()

    lock = sqlite.sync_engine.dialect.dbapi.write_lock
    waiting = []
    for n, text in enumerate(("second", "third"), start=1):
        waiting.append(asyncio.create_task(write(text)))
        await until(lambda n=n: lock.waiting == n)  # queued behind the open transaction
    assert order == [] and not any(task.done() for task in waiting)  # waiting, not failed
    await first.commit()
    await first.close()
    await asyncio.gather(*waiting)
    assert order == ["second", "third"]
    async with sessions() as session:
        texts = (await session.execute(select(notes.c.text).order_by(notes.c.id))).scalars()
        assert list(texts) == ["first", "second", "third"]


async def test_a_failed_write_gives_the_writer_back(sqlite):
    sessions = session_factory(sqlite)
    async with sessions() as session:
        await session.execute(insert(notes).values(id=1, text="a"))
        await session.commit()
    async with sessions() as session:
        with pytest.raises(Exception, match="UNIQUE"):
            await session.execute(insert(notes).values(id=1, text="again"))
        await session.rollback()
    async with sessions() as session:  # would wait forever if the lock were still held
        await asyncio.wait_for(session.execute(insert(notes).values(text="b")), 5)
        await session.commit()
        count = (await session.execute(select(func.count()).select_from(notes))).scalar_one()
    assert count == 2


def count_hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the trips to aiosqlite's thread from here on: [n]."""
    hops = [0]
    real = aiosqlite.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops[0] += 1
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return hops


async def test_a_write_transaction_runs_its_statements_without_thread_hops(sqlite, monkeypatch):
    """Inside the write transaction statements run on the loop's thread; only the commit goes
    to aiosqlite's thread."""
    sessions = session_factory(sqlite)
    async with sessions() as session:  # warm the pool: connecting is a hop of its own
        await session.execute(select(notes.c.id))
    hops = count_hops(monkeypatch)
    async with sessions() as session:
        for n in range(3):
            await session.execute(insert(notes).values(text=str(n)))
            await session.execute(select(func.count()).select_from(notes))
        await session.commit()
    assert hops[0] == 1
    async with sessions() as session:  # a read outside a write transaction: in the thread
        await session.execute(select(func.count()).select_from(notes))
    assert hops[0] == 2


async def test_a_unit_of_work_makes_no_thread_hop_a_reading_does(sqlite, monkeypatch):
    """A command's unit of work (a conversation turn) reads, writes and commits on the loop's
    thread; a reading (the dashboard's) keeps its reads in aiosqlite's thread."""
    factory = UnitOfWorkFactory(session_factory(sqlite), SystemClock())
    async with factory.reading() as uow:  # warm the pool: connecting is a hop of its own
        await uow.session.execute(select(notes.c.id))
    hops = count_hops(monkeypatch)
    async with factory() as uow:
        await uow.session.execute(select(func.count()).select_from(notes))
        await uow.session.execute(insert(notes).values(text="turn"))
        await uow.commit()
    assert hops[0] == 0
    async with factory() as uow:  # the commit landed
        count = (await uow.session.execute(select(func.count()).select_from(notes))).scalar()
    assert count == 1 and hops[0] == 0
    async with factory.reading() as uow:
        await uow.session.execute(select(func.count()).select_from(notes))
    assert hops[0] == 1


async def test_a_write_waits_for_another_process_holding_the_database(sqlite, tmp_path: Path):
    """Another process (here a plain sqlite3 connection) holds the write lock: the statement
    that would run on the loop's thread gets SQLITE_BUSY at once, and then waits in aiosqlite's
    thread for the busy timeout; once the other commits it goes in."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db", connect_args={"timeout": 10})
    other = sqlite3.connect(tmp_path / "w.db", check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO notes (text) VALUES ('other')")
        sessions = session_factory(engine)
        lock = engine.sync_engine.dialect.dbapi.write_lock

        async def write() -> None:
            async with sessions() as session:
                await session.execute(select(func.count()).select_from(notes))
                await session.execute(insert(notes).values(text="ours"))
                await session.commit()

        task = asyncio.create_task(write())
        await until(lambda: lock.holder is not None)  # ours, now waiting for the other
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()
        other.commit()
        await asyncio.wait_for(task, 10)
        async with sessions() as session:
            texts = (await session.execute(select(notes.c.text).order_by(notes.c.id))).scalars()
            assert list(texts) == ["other", "ours"]
    finally:
        other.close()
        await engine.dispose()


def lock_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "storage.write_lock"]


async def holding(sessions, text: str, release: asyncio.Event, held: asyncio.Event) -> None:
    """A write transaction kept open until `release` is set."""
    async with sessions() as session:
        await session.execute(insert(notes).values(text=text))
        held.set()
        await release.wait()
        await session.commit()


async def test_a_writer_that_waits_long_names_the_holder_in_one_line(sqlite, monkeypatch, caplog):
    monkeypatch.setattr(write_lock, "WARN_SECONDS", 0.0)  # "long" at once: no sleeping here
    sessions = session_factory(sqlite)
    release, held = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(holding(sessions, "digest", release, held), name="sweep")
    await held.wait()

    async def write() -> None:
        async with sessions() as session:
            await session.execute(insert(notes).values(text="sent"))
            await session.commit()

    waiter = asyncio.create_task(write(), name="wecom-sender")
    await until(lambda: lock_lines(caplog))
    (line,) = lock_lines(caplog)
    assert re.fullmatch(
        r"SQLite write lock: task 'wecom-sender' still waits after \d+\.\d s; held \d+\.\d s "
        r"by task 'sweep', whose transaction began with: INSERT INTO notes \(text\) VALUES "
        r"\(\?\) \(1 waiting\)",
        line,
    ), line
    assert [r.levelname for r in caplog.records if r.name == "storage.write_lock"] == ["WARNING"]
    release.set()
    await asyncio.gather(holder, waiter)  # the wait goes on after the line
    assert lock_lines(caplog) == [line]


async def test_a_writer_that_gives_up_says_who_held_the_lock(sqlite, monkeypatch, caplog):
    monkeypatch.setattr(write_lock, "WRITE_WAIT_SECONDS", 0.0)
    sessions = session_factory(sqlite)
    release, held = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(holding(sessions, "first", release, held), name="lease")
    await held.wait()
    with pytest.raises(Exception, match="database is locked"):
        async with sessions() as session:
            await session.execute(insert(notes).values(text="second"))
    (line,) = lock_lines(caplog)
    assert line.startswith("SQLite write lock: task ") and " gave up after 0.0 s; held " in line
    assert "by task 'lease', whose transaction began with: INSERT INTO notes" in line
    release.set()
    await holder


async def test_a_second_session_writing_inside_a_write_transaction_fails_at_once(sqlite, caplog):
    """It would wait for its own task's transaction: WRITE_WAIT_SECONDS of nothing, then the
    same error. Now the error comes at once, with the line."""
    sessions = session_factory(sqlite)
    async with sessions() as outer:
        await outer.execute(insert(notes).values(text="turn"))
        with pytest.raises(Exception, match="database is locked"):
            async with sessions() as inner:
                await inner.execute(insert(notes).values(text="token"))
        await outer.commit()
    (line,) = lock_lines(caplog)
    assert " would wait for itself after 0.0 s; held " in line
    assert "whose transaction began with: INSERT INTO notes (text) VALUES (?) (0 waiting)" in line
    async with sessions() as session:
        texts = (await session.execute(select(notes.c.text))).scalars()
        assert list(texts) == ["turn"]
