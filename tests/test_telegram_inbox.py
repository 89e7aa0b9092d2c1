"""Telegram long polling through the inbox: an update is stored before it is confirmed, a crash
loses none, a repeated update is handled once, a failing one holds back only its own chat."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from bot.telegram.polling import InboxProcessor, InboxRetry, TelegramPoller, chat_of
from handlers.conversation import Conversations
from storage.db import session_factory
from storage.inbox import SqlInbox
from storage.rows import InboxRow
from tests.fake_telegram import FakeTelegram
from tests.support.net import start
from tests.support.texts import BOUND_TO_G1


async def offset_past(fake: FakeTelegram, update_id: int) -> None:
    """Wait until the bot asked for updates after `update_id`: Telegram's confirmation."""
    seen = 1
    while True:
        calls = await fake.wait_calls("getUpdates", seen, answered=False)
        if any(int(c.params.get("offset") or 0) > update_id for c in calls):
            return
        seen = len(calls) + 1


async def test_an_update_taken_before_a_crash_is_handled_after_the_restart(tmp_path, monkeypatch):
    """kill -9 while an update is being handled, after Telegram counts it as delivered: the
    next `shuoshi run` on the same database handles it, once."""
    monkeypatch.chdir(tmp_path)
    handle = Conversations.handle
    in_hand = asyncio.Event()
    calls = 0

    async def stuck_the_first_time(self: Conversations, msg: Any, *args: Any) -> Any:
        nonlocal calls
        if msg.channel != "telegram":  # the local demo greets its web chat people at start
            return await handle(self, msg, *args)
        calls += 1
        if calls == 1:
            in_hand.set()
            await asyncio.Event().wait()  # the process dies while this update is in hand
        return await handle(self, msg, *args)

    monkeypatch.setattr(Conversations, "handle", stuck_the_first_time)
    async with FakeTelegram() as fake:
        app, _stop, task = await start(tmp_path, fake)
        update = fake.send_text(5001, 5001, "/start JL-XGC-01-G1")
        await asyncio.wait_for(in_hand.wait(), 10)
        await offset_past(fake, update["update_id"])
        task.cancel()  # the crash: nothing of the turn committed
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        await app.close()
        assert fake.pending_updates() == []  # Telegram will not send it again

        app, stop, task = await start(tmp_path, fake)
        sent = await fake.wait_sent(5001, 1, timeout=10)
        assert sent[0]["text"] == BOUND_TO_G1
        async with app.sessions() as session:
            row = (await session.execute(select(InboxRow))).scalar_one()
            assert (row.update_id, row.chat_id) == (update["update_id"], "5001")
            assert row.status != "failed"  # done, or being marked done right now
        stop.set()
        await asyncio.wait_for(task, 10)
        await app.close()
        assert len(fake.sent(5001)) == 1


async def test_the_offset_never_passes_an_update_that_was_not_stored(engine, clock):
    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        inbox = SqlInbox(session_factory(engine), "telegram")
        poller = TelegramPoller(bot, inbox, clock, on_stored=lambda: None, timeout=0)
        update = fake.send_text(5001, 5001, "hello")
        store = inbox.store

        async def database_away(*args: Any) -> int:
            raise ConnectionError("database away")

        inbox.store = database_away  # type: ignore[method-assign]
        try:
            await poller.poll_once()
        except ConnectionError:
            pass
        else:
            raise AssertionError("the failed store was not reported")
        assert poller.offset is None
        inbox.store = store  # type: ignore[method-assign]
        assert await poller.poll_once() == 1  # not confirmed, so Telegram sent it again
        assert await inbox.last_update_id() == update["update_id"]
        assert poller.offset == update["update_id"] + 1
        offsets = [c.params.get("offset") for c in fake.calls_of("getUpdates")]
        assert offsets == [None, None]
        await poller.poll_once()
        assert fake.calls_of("getUpdates")[-1].params["offset"] == update["update_id"] + 1
        await bot.session.close()


async def test_a_repeated_update_is_stored_and_handled_once(engine, clock):
    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        inbox = SqlInbox(session_factory(engine), "telegram")
        handled: list[int] = []

        async def handle(payload: dict[str, Any]) -> None:
            handled.append(payload["update_id"])

        processor = InboxProcessor(inbox, clock, handle)
        poller = TelegramPoller(bot, inbox, clock, on_stored=processor.wake, timeout=0)
        update = fake.send_text(5001, 5001, "hello")
        await poller.poll_once()
        fake.queue(update)  # Telegram delivers the same update_id again
        # A new process starts over from the database, so it asks from the stored offset on.
        again = TelegramPoller(bot, inbox, clock, on_stored=processor.wake, timeout=0)
        assert again.offset is None
        await again.poll_once()
        assert fake.calls_of("getUpdates")[-1].params["offset"] == update["update_id"] + 1
        fake.queue(update)
        await again.poll_once()  # a forced redelivery arrives despite the offset
        assert await processor.process_pending() == 1
        assert await processor.process_pending() == 0
        assert handled == [update["update_id"]]
        async with inbox.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(InboxRow)) == 1
        await bot.session.close()


async def test_a_failing_update_holds_back_its_chat_only_then_fails_with_the_reason(
    engine, clock, caplog
):
    inbox = SqlInbox(session_factory(engine), "telegram")
    handled: list[tuple[str, int]] = []

    async def handle(payload: dict[str, Any]) -> None:
        if payload["message"]["text"] == "poison":
            raise ValueError("cannot read this update")
        handled.append((chat_of(payload), payload["update_id"]))

    def message(update_id: int, chat: int, text: str) -> tuple[int, str, dict[str, Any]]:
        payload = {
            "update_id": update_id,
            "message": {"message_id": update_id, "date": 0, "text": text,
                        "chat": {"id": chat, "type": "private"}},
        }  # fmt: skip
        return update_id, chat_of(payload), payload

    await inbox.store(
        [message(1, 7, "a1"), message(2, 8, "poison"), message(3, 7, "a2"), message(4, 8, "b2"),
         message(5, 9, "c1")],
        clock.now(),
    )  # fmt: skip
    retry = InboxRetry(max_attempts=3, backoff_base=10, backoff_cap=60)
    processor = InboxProcessor(inbox, clock, handle, retry=retry)
    assert await processor.process_pending() == 3
    assert sorted(handled) == [("7", 1), ("7", 3), ("9", 5)]
    assert [h for h in handled if h[0] == "7"] == [("7", 1), ("7", 3)]  # in order per chat
    # Chat 8 waits for its retry: nothing before the backoff, the same failure after it.
    assert await processor.process_pending() == 0
    assert await inbox.next_attempt_at(clock.now()) == clock.now() + timedelta(seconds=10)
    clock.advance(timedelta(seconds=10))
    assert await processor.process_pending() == 0
    clock.advance(timedelta(seconds=20))
    with caplog.at_level("ERROR"):
        assert await processor.process_pending() == 2  # failed for good; its chat goes on
    assert ("8", 4) in handled
    async with inbox.sessions() as session:
        query = select(InboxRow).where(InboxRow.update_id == 2)
        poison = (await session.execute(query)).scalar_one()
    assert (poison.status, poison.attempts) == ("failed", 3)
    assert poison.last_error == "ValueError: cannot read this update"
    assert "inbox update 2 (chat 8) failed for good after 3 attempts" in caplog.text


async def test_handled_updates_are_pruned_but_the_newest_keeps_the_offset(engine, clock):
    inbox = SqlInbox(session_factory(engine), "telegram")
    payloads = [(i, "7", {"update_id": i, "message": {"text": str(i)}}) for i in (1, 2, 3, 4)]
    await inbox.store(payloads, clock.now())
    processor = InboxProcessor(inbox, clock, _ignore)
    assert await processor.process_pending() == 4
    assert await inbox.store([(5, "7", {"update_id": 5})], clock.now()) == 1
    clock.advance(timedelta(days=3))
    assert await inbox.prune(clock.now() - timedelta(days=2)) == 4  # 5 is pending: kept
    assert await processor.process_pending() == 1
    assert await inbox.prune(clock.now()) == 0  # the newest stays, however old
    assert await inbox.last_update_id() == 5


async def _ignore(payload: dict[str, Any]) -> None:
    return None
