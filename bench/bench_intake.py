"""Resident intake throughput through the Telegram adapter's dispatcher, on SQLite.

Feeds the whole resident conversation (start with a grid code, report, category, description,
album of two photos, done, location, no phone, confirm) for many residents through aiogram's
Dispatcher into shuoshi (the photos downloaded from a fake Bot API in another process, as from
Telegram), and prints updates per second. In the same run it prints the anchor:
aiogram dispatching the same number of updates to a handler that does one SQLAlchemy insert
each. Both are warmed up first (untimed), then measured in turn for several rounds, so that the
machine's load moves both alike; it prints each round, the median and lowest ratio
shuoshi / anchor, the SQL statements per update at each step of the
dialogue (the fixed cost per update that the intake-cost goal is about) and the peak memory.

    .venv/bin/python bench/bench_intake.py [--residents 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import multiprocessing
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import aiosqlite
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message, Update
from PIL import Image
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert, select
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.telegram.adapter import TelegramChannel, TelegramPhotos
from bot.telegram.sender import OutboxSender
from handlers.conversation import Conversations
from handlers.notify import Notifier
from handlers.routes import ALL_ROUTES
from storage.calendar import seed_calendar
from storage.db import create_engine, session_factory, upgrade_schema
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.rows import OutboxRow
from storage.uow import UnitOfWorkFactory
from tests.fake_telegram import FakeTelegram
from tests.fake_telegram.rules import DEFAULT_TOKEN
from workflow.clock import SystemClock
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

ROOT = Path(__file__).resolve().parent.parent
ids = itertools.count(1)


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), color).save(buffer, "JPEG")
    return buffer.getvalue()


def serve_fake(pipe: Connection) -> None:
    """The fake Bot API in its own process, as Telegram's servers are not in shuoshi's: its
    getFile and downloads must not be timed as shuoshi's work. Sends back its address and the
    two photos, then serves until told to stop."""

    async def serve() -> None:
        async with FakeTelegram() as fake:
            files = [fake.register_file(jpeg(c), folder="photos", ext="jpg")
                     for c in ((200, 30, 30), (30, 30, 200))]  # fmt: skip
            photos = [
                {"file_id": f.file_id, "file_unique_id": f.file_unique_id,
                 "file_size": f.file_size, "width": 320, "height": 240}
                for f in files
            ]  # fmt: skip
            pipe.send((fake.base_url, photos))
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(serve())


def make_bot(base_url: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url))
    return Bot(token=DEFAULT_TOKEN, session=session)


def message(user: int, **fields) -> dict:
    return {
        "message_id": next(ids),
        "date": int(time.time()),
        "chat": {"id": user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "居民", "language_code": "zh-hans"},
        **fields,
    }


def update(**fields) -> Update:
    return Update(update_id=next(ids), **fields)


class Shuoshi:
    """The system under test, fed update by update; timing covers feed_update only."""

    def __init__(self, bot: Bot, sessions, media: MediaStore) -> None:
        self.bot = bot
        self.sessions = sessions
        conversations = Conversations(
            UnitOfWorkFactory(sessions, SystemClock()),
            Workflow(WorkflowPolicy(), on_events=Notifier()),
            TelegramPhotos(self.bot, media),
            ALL_ROUTES,
        )
        self.channel = TelegramChannel(
            conversations, OutboxSender(self.bot, sessions, media, SystemClock())
        )
        self.dp = self.channel.dispatcher()
        self.elapsed = 0.0
        self.updates = 0
        self.statements = 0  # counted by the engine's cursor hook while an update is fed
        self.counting = False
        self.per_step: Counter[str] = Counter()  # statements per step of the dialogue
        self.updates_per_step: Counter[str] = Counter()
        self.seconds_per_step: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget the warm-up's figures."""
        self.elapsed = 0.0
        self.updates = self.statements = 0
        self.per_step.clear()
        self.updates_per_step.clear()
        self.seconds_per_step.clear()

    def count(self, *_: object) -> None:
        if self.counting:
            self.statements += 1

    async def feed(self, upd: Update, step: str) -> None:
        before = self.statements
        self.counting = True
        start = time.perf_counter()
        await self.dp.feed_update(self.bot, upd)
        took = time.perf_counter() - start
        self.elapsed += took
        self.seconds_per_step[step] += took
        self.counting = False
        self.updates += 1
        self.per_step[step] += self.statements - before
        self.updates_per_step[step] += 1

    async def last_button(self, chat: int, prefix: str) -> str:
        async with self.sessions() as session:
            rows = await session.execute(
                select(OutboxRow.payload)
                .where(OutboxRow.chat_id == str(chat))
                .order_by(OutboxRow.id.desc())
                .limit(5)
            )
            for (payload,) in rows:
                for line in payload["buttons"]:
                    for b in line:
                        if b["data"].startswith(prefix):
                            return b["data"]
        raise LookupError(prefix)

    async def press(self, user: int, prefix: str, step: str) -> None:
        data = await self.last_button(user, prefix)
        await self.feed(update(callback_query={
            "id": f"q{next(ids)}", "chat_instance": "x", "data": data,
            "from": {"id": user, "is_bot": False, "first_name": "居民"},
            "message": message(user, text="card")}), step)  # fmt: skip

    async def resident(self, user: int, photos: list[dict]) -> None:
        await self.feed(update(message=message(user, text="/start JL-XGC-01-G1")), "start")
        await self.feed(update(message=message(user, text="📝 我要说事")), "report")
        await self.press(user, "cat:", "category")
        await self.feed(update(message=message(user, text="东门井盖破损，夜里有人踩空")), "text")
        for photo in photos:
            album = message(user, photo=[photo], media_group_id=f"g{user}")
            await self.feed(update(message=album), "photo")
        await self.press(user, "ph:", "photos done")
        await self.feed(update(message=message(
            user, location={"latitude": 37.22, "longitude": 115.03})), "location")  # fmt: skip
        await self.feed(update(message=message(user, text="不留电话")), "phone")
        await self.press(user, "cf:", "confirm")


async def anchor(updates: list[Update], bot, url: str) -> float:
    """aiogram to a handler doing one SQLAlchemy insert per update: the floor to compare with
    (WAL as shuoshi's, but SQLAlchemy's stock aiosqlite adapter rather than shuoshi's
    one-hop one, storage/sqlite_driver.py, so that the floor stays where it was)."""
    engine = create_engine(url, module=AsyncAdapt_aiosqlite_dbapi(aiosqlite, sqlite3))
    meta = MetaData()
    table = Table("anchor", meta, Column("id", Integer, primary_key=True), Column("text", String))
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    sessions = session_factory(engine)
    router = Router()

    async def handle(event: Message | object) -> None:
        async with sessions() as session:
            await session.execute(insert(table).values(text=str(getattr(event, "text", ""))))
            await session.commit()

    router.message.register(handle)
    router.callback_query.register(handle)
    dp = Dispatcher()
    dp.include_router(router)
    start = time.perf_counter()
    for upd in updates:
        await dp.feed_update(bot, upd)
    elapsed = time.perf_counter() - start
    await engine.dispose()
    return elapsed


async def main(residents: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        engine = create_engine(url)
        await upgrade_schema(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            await seed_calendar(session, datetime.now(UTC))
            await session.commit()
        await load_org_file(sessions, ROOT / "bot" / "examples" / "county.yaml")
        ours, theirs = multiprocessing.Pipe()
        server = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(theirs,))
        server.start()
        try:
            base_url, photos = await asyncio.get_running_loop().run_in_executor(None, ours.recv)
            system = Shuoshi(make_bot(base_url), sessions, MediaStore(Path(tmp) / "media"))
            anchor_url = f"sqlite+aiosqlite:///{tmp}/anchor.db"
            # Warm-up, untimed for both: what a running server has done before its first
            # update (catalogs read, templates compiled, aiogram's generic models built).
            await system.resident(800000, photos)
            await anchor([update(message=message(1, text="w"))] * 20, system.bot, anchor_url)
            system.reset()
            event.listen(engine.sync_engine, "before_cursor_execute", system.count)
            # Rounds side by side, so that a change in the machine's load hits both.
            results: list[tuple[float, float]] = []
            user = 900000
            for _ in range(rounds):
                elapsed, updates = system.elapsed, system.updates
                for _ in range(residents):
                    await system.resident(user, photos)
                    user += 1
                n = system.updates - updates
                rate = n / (system.elapsed - elapsed)
                same = [update(message=message(1, text=f"t{i}")) for i in range(n)]
                anchor_rate = n / await anchor(same, system.bot, anchor_url)
                results.append((rate, anchor_rate))
            await system.bot.session.close()
        finally:
            ours.send("stop")
            server.join(10)
        await engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"residents: {residents} per round, rounds: {rounds}, updates: {system.updates}")
    print("anchor: aiogram + one SQLAlchemy insert per update, the same number of updates")
    for i, (rate, anchor_rate) in enumerate(results, 1):
        print(f"round {i}: shuoshi {rate:,.1f} updates/s, anchor {anchor_rate:,.1f} updates/s,"
              f" ratio {rate / anchor_rate:.3f}")  # fmt: skip
    ratios = sorted(rate / anchor_rate for rate, anchor_rate in results)
    print(f"ratio shuoshi / anchor: median {statistics.median(ratios):.3f}, min {ratios[0]:.3f}"
          " (goal >= 0.3, target 0.5)")  # fmt: skip
    print(f"SQL statements per update: {system.statements / system.updates:.1f} on average")
    for step, statements in system.per_step.items():
        n = system.updates_per_step[step]
        ms = 1000 * system.seconds_per_step[step] / n
        print(f"  {step:<12} {statements / n:5.1f} per update, {ms:5.2f} ms ({n} updates)")
    print("  (goal: <= 4 statements for a plain text update)")
    print(f"peak memory (max RSS): {peak_mb:,.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200, help="residents per round")
    parser.add_argument("--rounds", type=int, default=3, help="shuoshi/anchor rounds in turn")
    args = parser.parse_args()
    asyncio.run(main(args.residents, args.rounds))
