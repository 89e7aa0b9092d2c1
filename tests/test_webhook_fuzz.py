"""Hostile posts to the Telegram webhook of a real `shuoshi run` process (webhook mode, with its
secret; the Bot API is the fake one): bad JSON, unknown update types, huge and unstorable text,
forged button data, extreme ids, missing fields. Nothing raises, nothing sticks in the outbox,
and a resident's ordinary report is still answered at once; on SQLite and PostgreSQL.

One server (and one event loop that the examples drive) serves all of a database's examples."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from bot.app import App, assemble
from bot.config import load_settings
from bot.runner import WEBHOOK_PATH, Running, serve
from bot.telegram.sender import OutboxSender
from storage.calendar import seed_calendar
from storage.db import create_engine, session_factory, upgrade_schema
from storage.org_file import load_org_file
from storage.rows import OutboxRow
from tests.conftest import EXAMPLE_COUNTY, PG_SKIP_REASON, PG_URL
from tests.fake_telegram import FakeTelegram
from tests.support.texts import BOUND_TO_G1
from workflow.clock import SystemClock

SECRET = "fuzz-Secret_0123456789"
BIG = 2**63 + 7


class _Errors(logging.Handler):
    """Every ERROR (or worse) logged anywhere while the server runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Server:
    loop: asyncio.AbstractEventLoop
    app: App
    fake: FakeTelegram
    sender: OutboxSender
    url: str
    errors: _Errors

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    async def post(self, body: bytes) -> int:
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url, data=body, headers=headers) as resp,
        ):
            return resp.status

    async def stuck(self) -> int:
        """Outbox rows still pending after a delivery pass (one pass settles every due row)."""
        await self.sender.deliver_pending()
        async with self.app.sessions() as session:
            return (
                await session.execute(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
                )
            ).scalar_one()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _engine(kind: str, tmp_path: Path) -> tuple[Any, str | None]:
    if kind == "sqlite":
        return create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"), None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    server_settings = {"server_settings": {"search_path": schema}}
    return create_engine(PG_URL, connect_args=server_settings), schema


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One process per database for the module: the fuzz, then the ordinary report."""
    if request.param == "postgresql" and PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    tmp_path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    loop = asyncio.new_event_loop()
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    # The process's own clock, as `shuoshi run` has it: the sender's lease and flood limits
    # run on it while the examples go (nothing here waits for time to pass).
    clock = SystemClock()
    fake = FakeTelegram()
    stop = asyncio.Event()
    ready: list[Running] = []

    async def start() -> tuple[App, asyncio.Task[None], str | None]:
        await fake.start()
        engine, schema = await _engine(request.param, tmp_path)
        await upgrade_schema(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            await seed_calendar(session, clock.now())
            await session.commit()
        await load_org_file(sessions, EXAMPLE_COUNTY)
        config = load_settings(
            data_dir=tmp_path / "data", web={"port": _port()},
            telegram={"token": fake.token, "api_base": fake.base_url, "mode": "webhook",
                      "webhook_secret": SECRET, "webhook_url": "https://bot.example.org"},
            outbox={"chat_interval_seconds": 0, "messages_per_second": 1000,
                    "group_messages_per_minute": 1000},
        )  # fmt: skip
        app = assemble(config, engine, sessions, clock)
        task = asyncio.create_task(serve(app, stop, on_ready=ready.append))
        while not ready or not _sender(ready[0]).may_send():  # started, and holds the lease
            await asyncio.wait({task}, timeout=0.05)
            if task.done():
                task.result()  # it failed to start: say why
        return app, task, schema

    app, task, schema = loop.run_until_complete(asyncio.wait_for(start(), 60))
    sender = _sender(ready[0])
    url = f"http://127.0.0.1:{app.settings.web.port}{WEBHOOK_PATH}"
    try:
        yield Server(loop, app, fake, sender, url, errors)
    finally:

        async def finish() -> None:
            stop.set()
            await asyncio.wait_for(task, 30)
            await app.close()
            await fake.stop()
            if schema is not None:
                admin = create_engine(PG_URL)
                async with admin.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                await admin.dispose()

        loop.run_until_complete(finish())
        loop.close()
        logging.getLogger().removeHandler(errors)


def _sender(running: Running) -> OutboxSender:
    return next(w.__self__ for w in running.wakers if isinstance(w.__self__, OutboxSender))


# Strategies -------------------------------------------------------------------------------

IDS = st.one_of(
    st.sampled_from([0, -1, 1, BIG, -BIG, 2**31, 2**53 + 1, 10**30]),
    st.integers(min_value=-(10**20), max_value=10**20),
)
HOSTILE = st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\u202e", "<", "&", "\n"])
TEXT = st.one_of(
    st.text(alphabet=st.one_of(st.characters(), HOSTILE), max_size=80),
    st.sampled_from(["/x\x00", "/start \x00", "/bind \ud800", "/my", "📝 我要说事", "/start"]),
    st.just("长" * 70_000),  # far over Telegram's 4096
)
PRIVATE_USER = 5001


def _user(uid: Any) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": "\x00名\ud800", "language_code": "zh-hans"}


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(IDS)
    chat = draw(st.one_of(st.just(uid), IDS))
    message: dict[str, Any] = {
        "message_id": draw(IDS), "date": 0, "from": _user(uid),
        "chat": {"id": chat, "type": draw(st.sampled_from(["private", "group", "supergroup",
                                                           "channel", "?"]))},
        "text": draw(TEXT),
    }  # fmt: skip
    extra = draw(st.sampled_from(["", "caption", "location", "contact", "reply", "photo"]))
    if extra == "caption":
        message["caption"] = message.pop("text")
    elif extra == "location":
        lat, lon = draw(st.sampled_from([(91.0, 0.0), (0.0, 1e308), (37.2, 115.0)]))
        message["location"] = {"latitude": lat, "longitude": lon}
    elif extra == "contact":
        message["contact"] = {"phone_number": draw(TEXT), "first_name": draw(TEXT),
                              "user_id": draw(IDS)}  # fmt: skip
    elif extra == "reply":
        message["reply_to_message"] = {"message_id": draw(IDS), "date": 0,
                                       "chat": message["chat"]}  # fmt: skip
    elif extra == "photo":
        message["photo"] = [{"file_id": draw(TEXT), "file_unique_id": "u", "width": draw(IDS),
                             "height": 1, "file_size": draw(IDS)}]  # fmt: skip
    for key in draw(st.lists(st.sampled_from(["from", "chat", "date", "text"]), max_size=2)):
        message.pop(key, None)  # missing fields
    return message


@st.composite
def callbacks(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(IDS)
    data = draw(st.one_of(
        st.sampled_from(["a:sv:JL-20261123-0001", "ra:JL-20261123-0001:s", "cat::x", "a:::"]),
        st.text(alphabet=st.one_of(st.characters(), HOSTILE), max_size=300),
    ))  # fmt: skip
    callback: dict[str, Any] = {
        "id": draw(TEXT),
        "from": _user(uid),
        "chat_instance": "1",
        "data": data + draw(st.sampled_from(["", "\x00", "\ud800"])),
    }
    if draw(st.booleans()):
        callback["message"] = {"message_id": draw(IDS), "date": 0,
                               "chat": {"id": draw(IDS), "type": "private"}}  # fmt: skip
    return callback


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["message", "edited_message", "callback_query", "channel_post",
                                 "unknown", "raw", "json"]))  # fmt: skip
    update: dict[str, Any] = {"update_id": draw(IDS)}
    if kind in ("message", "edited_message", "channel_post"):
        update[kind] = draw(messages())
    elif kind == "callback_query":
        update[kind] = draw(callbacks())
    elif kind == "unknown":
        update[draw(st.sampled_from(["business_message", "frobnicate", ""]))] = {"x": draw(TEXT)}
    elif kind == "raw":
        return draw(st.binary(max_size=200))
    else:
        value = draw(st.recursive(st.none() | st.booleans() | IDS | TEXT,
                                  lambda inner: st.lists(inner, max_size=3)
                                  | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                                  max_leaves=8))  # fmt: skip
        return json.dumps(value).encode()
    return json.dumps(update).encode()  # escaped like Telegram: \ud800 and \u0000 survive


# The test ---------------------------------------------------------------------------------


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies())
def test_hostile_updates_break_nothing(server: Server, body: bytes):
    status = server.run(server.post(body))
    assert status in (200, 400), (status, body[:200])
    assert server.run(server.stuck()) == 0
    assert [r.getMessage() for r in server.errors.records] == []


def test_after_the_fuzz_a_resident_is_answered_at_once(server: Server):
    hostile = [
        b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 5001, '
        b'"type": "private"}, "from": {"id": 5001, "is_bot": false, "first_name": "x"}, '
        b'"text": "/x\\u0000\\ud800"}}',
        b"{bad json",
        b'{"update_id": 9223372036854775815, "frobnicate": {}}',
    ]
    for body in hostile:
        assert server.run(server.post(body)) in (200, 400)

    async def report() -> list[dict[str, Any]]:
        fake, r = server.fake, PRIVATE_USER
        await server.sender.deliver_pending()  # the answers to the hostile posts go first
        before = len(fake.sent(r))
        update = fake.send_text(r, r, "/start JL-XGC-01-G1")
        await server.post(json.dumps(update).encode())
        await server.sender.deliver_pending()
        return (await fake.wait_sent(r, before + 1, timeout=5))[before:]

    sent = server.run(report())
    assert BOUND_TO_G1 in [m.get("text") for m in sent]
    assert server.run(server.stuck()) == 0
    assert [r.getMessage() for r in server.errors.records] == []
