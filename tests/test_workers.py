"""Several `shuoshi run` processes on one database (docs/scaling.md): two senders, each on its
own engine, deliver every outbox row exactly once and keep each chat's order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from dataclasses import replace

import pytest
from sqlalchemy import func, select, text

from bot.app import open_app
from bot.cli.main import main
from bot.config import load_settings
from bot.runner import Running, serve
from bot.telegram.sender import OutboxSender
from handlers.messages import Location, PhotoRef
from handlers.render import Renderer
from storage.channel import SqlChannelStore
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.rows import LeaseRow, OutboxRow
from storage.uow import UnitOfWorkFactory
from tests.fake_telegram import FakeTelegram
from tests.support.chat import Bot
from tests.support.engines import another_engine
from tests.support.net import STOP_SECONDS, free_port
from tests.support.outbox import queue
from tests.support.paths import EXAMPLE_COUNTY
from tests.support.texts import BOUND_TO_G1
from workflow.channels import Conversation

CHATS = [str(6000 + n) for n in range(30)]
PER_CHAT = 6


async def test_two_senders_on_one_database_deliver_every_message_exactly_once(
    engine, world, fake, media
):
    for i in range(PER_CHAT):
        for chat in CHATS:
            await queue(world, chat, f"{chat}/{i}")
    clock = world["uow"].clock
    other = await another_engine(engine)
    try:
        senders = [
            OutboxSender(fake.make_bot(), sessions, media, clock, concurrency=4)
            for sessions in (world["sessions"], session_factory(other))
        ]
        counts = [0, 0]
        for _ in range(3 * PER_CHAT):  # both processes' passes, side by side, until done
            sent = await asyncio.gather(*(s.deliver_pending() for s in senders))
            counts = [c + n for c, n in zip(counts, sent, strict=True)]
            if sum(sent) == 0:
                break
    finally:
        await other.dispose()
    async with world["sessions"]() as session:
        statuses = dict(
            (await session.execute(
                select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
            )).all()
        )  # fmt: skip
    assert statuses == {"sent": len(CHATS) * PER_CHAT}
    assert min(counts) > 0, f"both senders must have worked to prove anything: {counts}"
    deliveries = Counter(m["text"] for m in fake.sent())
    assert sum(deliveries.values()) == len(CHATS) * PER_CHAT
    assert [t for t, n in deliveries.items() if n != 1] == []
    for chat in CHATS:  # each chat's messages in the order they were written
        assert [m["text"] for m in fake.sent(int(chat))] == [f"{chat}/{i}" for i in range(PER_CHAT)]


# --------------------------------------------------------------------------- roles


async def serving(tmp_path, fake, roles: list[str], ready: list):
    """One `serve` with these roles on the shared data_dir (one SQLite file for all)."""
    settings = load_settings(
        data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY,
        telegram={"token": fake.token, "api_base": fake.base_url},
        web={"port": free_port()}, process={"roles": roles},
    )  # fmt: skip
    app = await open_app(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, stop, on_ready=ready.append))
    return app, stop, task


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


async def test_an_intake_process_and_a_sender_process_share_the_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with FakeTelegram() as fake:
        ready: list[Running] = []
        intake = await serving(tmp_path, fake, ["web", "sweeper"], ready)
        await load_org_file(intake[0].sessions, EXAMPLE_COUNTY)
        sender = await serving(tmp_path, fake, ["sender"], ready)
        await fake.wait_calls("getMe", 2, timeout=15)  # both started (ready follows getMe)
        fake.send_text(5001, 5001, "/start JL-XGC-01-G1")
        # The intake process polled and handled the update, the sender process answered it.
        assert (await fake.wait_sent(5001, 1, timeout=15))[0]["text"] == BOUND_TO_G1
        assert listening(intake[0].settings.web.port)
        assert not listening(sender[0].settings.web.port)
        async with intake[0].sessions() as session:
            holders = dict((await session.execute(select(LeaseRow.name, LeaseRow.holder))).all())
        telegram = [name for name in holders if name.startswith("telegram")]
        assert len(telegram) == 2 and holders[telegram[0]] != holders[telegram[1]]
        lines = [Renderer("en").macro("cli.j2", "running", r=r) for r in ready]
        assert any("this process runs: web, sweeper" in line for line in lines), lines
        assert any("without a web server" in line and "runs: sender." in line for line in lines), (
            lines
        )
        for app, stop, task in (intake, sender):
            stop.set()
            await asyncio.wait_for(task, STOP_SECONDS)
            await app.close()


def test_a_malformed_roles_setting_is_one_line(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_PROCESS__ROLES", "web,mailer")
    code = main(["case", "list"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "process.roles" in err and "SHUOSHI_PROCESS__ROLES" in err and "'mailer'" in err


# --------------------------------------------------------------------------- one chat's turns


async def test_turns_of_one_chat_wait_for_each_other_across_processes(engine, world):
    if engine.dialect.name != "postgresql":
        async with world["sessions"]() as first, world["sessions"]() as second:
            await SqlChannelStore(first).lock_chat("telegram", "5001")
            await SqlChannelStore(second).lock_chat("telegram", "5001")  # a no-op on SQLite
        return
    other = await another_engine(engine)
    others = session_factory(other)
    pids: list[int] = []

    async def take(chat: str) -> None:
        async with others() as session:
            pids.append((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await SqlChannelStore(session).lock_chat("telegram", chat)
            await session.commit()

    try:
        async with world["sessions"]() as first:
            await SqlChannelStore(first).lock_chat("telegram", "5001")
            await asyncio.wait_for(take("5002"), 10)  # another chat is not held up
            same = asyncio.create_task(take("5001"))
            waiting = False
            for _ in range(2000):  # until PostgreSQL shows it waiting (no sleep: ask it)
                if len(pids) == 2:
                    waiting = (await first.execute(WAITING, {"pid": pids[1]})).scalar_one() > 0
                    if waiting:
                        break
                await first.execute(text("SELECT 1"))
            assert waiting and not same.done()
            await first.commit()  # the end of the turn lets the other one in
        await asyncio.wait_for(same, 10)
    finally:
        await other.dispose()


WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND NOT granted"
)


async def test_a_turn_that_waited_for_its_chat_reads_what_the_turn_before_wrote(engine, world):
    """PostgreSQL takes the chat's lock in the processed mark's INSERT (begin_turn), whose
    snapshot is older than the wait: the turn's read, the next statement, must still see the
    draft the turn before it committed meanwhile, and a redelivery of that turn's update,
    waiting as well, is then found processed."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer and one process: nothing waits")
    other = await another_engine(engine)
    others = session_factory(other)
    now = world["uow"].clock.now()
    pids: dict[str, int] = {}

    async def turn(update_key: str) -> tuple[bool, Conversation]:
        async with others() as session:
            store = SqlChannelStore(session)
            pids[update_key] = (await session.execute(BACKEND_PID)).scalar_one()
            await session.commit()  # a fresh transaction: begin_turn is its first statement
            began = await store.begin_turn("telegram", "5001", update_key, now)
            _person, conv = await store.turn_state("telegram", "5001", "5001")
            await session.commit()
            return began, conv

    try:
        async with world["sessions"]() as first:
            store = SqlChannelStore(first)
            assert await store.begin_turn("telegram", "5001", "m:5001:1", now)
            _person, conv = await store.turn_state("telegram", "5001", "5001")
            assert conv.version == 0
            await store.save_conversation(replace(conv, step="report_photo"), now)
            waiting = [asyncio.create_task(turn(key)) for key in ("m:5001:2", "m:5001:1")]
            for _ in range(2000):  # until PostgreSQL shows both waiting (no sleep: ask it)
                blocked = [
                    (await first.execute(WAITING, {"pid": p})).scalar_one()
                    for p in list(pids.values())
                ]
                if len(blocked) == 2 and all(blocked):
                    break
                await first.execute(text("SELECT 1"))
            else:
                raise AssertionError("the other turns did not wait for the chat")
            assert not any(task.done() for task in waiting)
            await first.commit()
        (began, seen), (again, _) = await asyncio.wait_for(asyncio.gather(*waiting), 10)
    finally:
        await other.dispose()
    assert began and (seen.step, seen.version) == ("report_photo", 1)
    assert not again  # the first turn's update, delivered again: already processed


BACKEND_PID = text("SELECT pg_backend_pid()")


async def test_an_album_arriving_at_two_processes_keeps_both_photos_without_retries(
    engine, world, tmp_path, caplog
):
    other = await another_engine(engine)
    try:
        there = Bot({**world, "uow": UnitOfWorkFactory(session_factory(other), world["uow"].clock)},
                    tmp_path)  # fmt: skip
        here = Bot(world, tmp_path)
        await here.send("5001", text="📝 我要说事")
        await here.press("5001", "cat:")
        await here.send("5001", text="井盖坏了")
        caplog.set_level(logging.INFO, logger="handlers.conversation")
        for _ in range(3):  # the photos of three albums, each pair to two processes at once
            await asyncio.gather(
                here.send("5001", photos=(PhotoRef("red", size=100),), media_group_id="g1"),
                there.send("5001", photos=(PhotoRef("blue", size=100),), media_group_id="g1"),
            )
        raced = [r.getMessage() for r in caplog.records if "raced" in r.getMessage()]
        await here.press("5001", "ph:")
        await here.send("5001", location=Location(37.22, 115.03))
        summary = await here.press("5001", "ct:")
    finally:
        await other.dispose()
    assert "6 张" in summary[0].text
    if engine.dialect.name == "postgresql":
        assert raced == []  # the second turn waited for the first instead of racing it
