"""Several `shuoshi run` processes on one database (docs/scaling.md): two senders, each on its
own engine, deliver every outbox row exactly once and keep each chat's order."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from bot.telegram.sender import OutboxSender
from storage.db import session_factory
from storage.rows import OutboxRow
from tests.support.engines import another_engine
from tests.support.outbox import queue

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
