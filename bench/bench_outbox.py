"""Outbox throughput to many chats through a fake Bot API that enforces Telegram's 30/s.

Queues one message to each of `--chats` different private chats in a SQLite outbox, then runs
the sender exactly as `shuoshi run` builds it (OutboxSender.from_settings, the system clock)
against the fake Bot API with Telegram's limits enforced in real time (30 messages per second
overall, one per second per chat, 20 per minute per group; over them it answers 429 with
retry_after). Runs twice in one go, on the same machine: the anchor, with no round trip to the
API, and the figure, with a simulated round trip (`--latency-ms`, default 150 ms: Telegram
seen from far away; half of it on the way there, when the fake counts the call). For each it
prints, without pass or fail:

- the span from the first to the last accepted send, and the achieved rate as a fraction of
  the limit: a 1 s sliding window of 30 lets at most 30 x (span + 1 s) messages through in a
  span, so fraction = sent / (30 x (span + 1));
- the 429s the fake answered (self-inflicted: the sender broke a limit), and the busiest 1 s
  window it saw;
- the total time from the first pass until every row was marked sent.

The last line puts the figure beside its anchor and the goal (>= 0.9 of 30/s at 150 ms, 0 429s).

    .venv/bin/python bench/bench_outbox.py [--chats 1000] [--concurrency 8] [--latency-ms 150]

`--concurrency 1` shows why the sender keeps several calls in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import OutboxSettings
from bot.telegram.sender import OutboxSender
from handlers.messages import Button, Outgoing
from storage.db import create_engine, session_factory, upgrade_schema
from storage.media import MediaStore
from storage.rows import OutboxRow
from storage.uow import UnitOfWorkFactory
from tests.fake_telegram import FakeTelegram
from workflow.clock import SystemClock
from workflow.ports import OutgoingMessage

LIMIT = 30  # messages per second, Telegram's overall limit for one bot


async def queue(uow: UnitOfWorkFactory, chats: int) -> None:
    """One case-card-like message (text and a button) to each chat, in one transaction."""
    async with uow() as unit:
        for i in range(chats):
            chat = str(100_000 + i)
            message = Outgoing(chat_id=chat, text=f"<b>JL-20261123-{i:04d}</b> 井盖破损，请初筛",
                               buttons=[[Button("有效", f"a:sv:{i}")]])  # fmt: skip
            await unit.outbox.add(OutgoingMessage("telegram", chat, message.payload(), None))
        await unit.commit()


async def pending(sessions) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
        return (await session.execute(query)).scalar_one()


async def run_once(chats: int, concurrency: int, latency_ms: float) -> tuple[float, int]:
    """One run on a fresh outbox; prints its figures, returns (fraction of the limit, 429s)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade_schema(engine)
        sessions = session_factory(engine)
        clock = SystemClock()
        await queue(UnitOfWorkFactory(sessions, clock), chats)
        async with FakeTelegram() as fake:
            fake.enforce_limits(per_second=LIMIT)  # in real time: the server's own clock
            fake.latency = latency_ms / 1000
            settings = OutboxSettings(concurrency=concurrency)
            sender = OutboxSender.from_settings(
                fake.make_bot(), sessions, MediaStore(Path(tmp) / "media"), clock, settings
            )
            start = time.perf_counter()
            running = asyncio.create_task(sender.run(idle_seconds=1.0))
            while await pending(sessions):  # noqa: ASYNC110 - polls the database, not an event
                await asyncio.sleep(0.05)  # a benchmark watching the outbox; tests never sleep
            total = time.perf_counter() - start
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            receipts = fake.receipts
            span = receipts[-1].at - receipts[0].at
            busiest = fake.max_in_window(1.0)
            refused = fake.too_many_requests
        async with sessions() as session:
            failed = (
                await session.execute(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "failed")
                )
            ).scalar_one()
        await engine.dispose()
    fraction = len(receipts) / (LIMIT * (span + 1))
    print(f"round trip {latency_ms:g} ms, concurrency {concurrency}: {chats} chats, "
          f"{len(receipts)} messages accepted, {failed} failed rows")  # fmt: skip
    print(f"  first to last send: {span:.2f} s; achieved {len(receipts) / (span + 1):.1f} "
          f"messages/s = {fraction:.3f} of the {LIMIT}/s limit")  # fmt: skip
    print(f"  429s received: {refused}; busiest 1 s window: {busiest} messages; "
          f"total {total:.2f} s until every row was marked sent")  # fmt: skip
    return fraction, refused


async def main(chats: int, concurrency: int, latency_ms: float) -> None:
    anchor, anchor_429 = await run_once(chats, concurrency, 0.0)
    figure, figure_429 = await run_once(chats, concurrency, latency_ms)
    print(f"delivery pace: {figure:.3f} of {LIMIT}/s with a {latency_ms:g} ms round trip "
          f"({figure_429} 429s) against the anchor {anchor:.3f} with none ({anchor_429} 429s); "
          f"goal >= 0.9 and 0 429s")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=1000, help="messages, one per chat")
    parser.add_argument("--concurrency", type=int, default=OutboxSettings().concurrency)
    parser.add_argument("--latency-ms", type=float, default=150.0,
                        help="simulated round trip to the Bot API per call (the figure; "
                             "the anchor has none)")  # fmt: skip
    args = parser.parse_args()
    asyncio.run(main(args.chats, args.concurrency, args.latency_ms))
