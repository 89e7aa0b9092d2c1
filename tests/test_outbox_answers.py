"""Answers first: the rows a conversation turn writes to the chat whose update caused it go
ahead of background rows to other chats (bot/telegram/sender.py `_send_due`), while each
chat's rows keep their order and the background still gets the rest of the window.

On the world's ManualClock with Telegram's limits (30/s overall, 1/s per chat), so a pass
sends 30 rows and the 200 background rows queued first would hold an answer back for seven
seconds if rows went oldest first.
"""

from __future__ import annotations

import asyncio

from bot.ratelimit import RateLimits
from storage.outbox import ANSWER
from tests.support.chat import RESIDENT, Bot
from tests.support.engines import counting
from tests.support.outbox import queue, rows
from tests.support.sending import drain, make_sender, texts

BACKGROUND = [str(9000 + n) for n in range(200)]  # other chats, e.g. a digest to each


async def background(world) -> None:
    for chat in BACKGROUND:
        await queue(world, chat, f"digest {chat}")


async def test_a_turns_answer_goes_out_in_the_next_pass_ahead_of_200_background_rows(
    world, fake, media, tmp_path
):
    sender = make_sender(world, fake, media)
    await background(world)
    await Bot(world, tmp_path).send(str(RESIDENT), text="你好")
    answers = [r for r in await rows(world) if r.chat_id == str(RESIDENT)]
    assert answers and all(r.payload.get(ANSWER) for r in answers)
    assert not any(r.payload.get(ANSWER) for r in await rows(world) if r.chat_id in BACKGROUND)

    assert await sender.deliver_pending() == 30  # the window's 30, the answer among them
    assert len(fake.sent(RESIDENT)) == 1
    # Background rows still get the rest of the window, and all of them go out.
    assert await drain(sender) == 200 + len(answers) - 30
    assert all(len(fake.sent(int(chat))) == 1 for chat in BACKGROUND)
    assert all(c.error is None for c in fake.calls_of("sendMessage"))  # no 429


async def test_the_waiting_chats_older_rows_go_first_in_its_own_order(world, fake, media, tmp_path):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    await queue(world, str(RESIDENT), "reminder")  # a background row to the resident's chat
    await background(world)
    await Bot(world, tmp_path).send(str(RESIDENT), text="你好")

    await sender.deliver_pending()
    assert texts(fake, RESIDENT) == ["reminder"]  # the chat was served first, its head first
    clock.advance(seconds=1)  # the chat's 1/s
    await sender.deliver_pending()
    (reminder, answer) = texts(fake, RESIDENT)
    assert reminder == "reminder" and answer != "reminder"
    await drain(sender)
    assert all(r.status == "sent" for r in await rows(world))


async def test_a_paced_pass_stops_waiting_for_the_window_when_new_rows_are_committed(
    world, fake, media, monkeypatch
):
    sender = make_sender(world, fake, media)
    for chat in BACKGROUND[:40]:
        await queue(world, chat, f"digest {chat}")
    real = fake.execute

    async def execute(method, params, files=None):  # type: ignore[no-untyped-def]
        if len(fake.calls_of("sendMessage")) == 29:
            sender.wake()  # a turn committed rows meanwhile: maybe an answer, for the next pass
        return await real(method, params, files)

    monkeypatch.setattr(fake, "execute", execute)
    # Without the wake-up this pass would wait for the full window (the clock never moves).
    async with asyncio.timeout(10):
        assert await sender.deliver_pending(paced=True) == 30
    assert sender.wake_at is not None  # the other 10 go when the window frees


async def test_background_rows_leave_the_answer_reserve_so_a_later_answer_goes_at_once(
    world, fake, media
):
    sender = make_sender(world, fake, media, RateLimits(margin=0.0, answer_reserve=3))
    await background(world)
    assert await sender.deliver_pending() == 27  # the background takes 27 of the 30
    await queue(world, str(RESIDENT), "answer", answer=True)
    sender.wake()
    assert await sender.deliver_pending() == 1  # on the same clock: no window to wait for
    assert texts(fake, RESIDENT) == ["answer"]


async def test_a_pass_starts_no_background_row_once_new_rows_are_committed(
    world, fake, media, monkeypatch
):
    """Background rows go out while an answer is being written: once its commit wakes the
    sender, the pass ends (though the window has room), and the next serves the answer
    before the backlog, instead of after it."""
    sender = make_sender(world, fake, media)
    for chat in BACKGROUND[:10]:
        await queue(world, chat, f"digest {chat}")
    real = fake.execute

    async def execute(method, params, files=None):  # type: ignore[no-untyped-def]
        result = await real(method, params, files)
        if len(fake.calls_of("sendMessage")) == 3 and not fake.sent(RESIDENT):
            await queue(world, str(RESIDENT), "answer", answer=True)  # a turn meanwhile
            sender.wake()
        return result

    monkeypatch.setattr(fake, "execute", execute)
    assert await sender.deliver_pending(paced=True) == 3
    assert sender.wake_at is not None and sender.wake_at <= sender.clock.now()
    await sender.deliver_pending(paced=True)
    chats = [c.params["chat_id"] for c in fake.calls_of("sendMessage")]
    assert chats[3] == RESIDENT and len(chats) == 11


async def test_rows_committed_after_a_pass_began_end_its_background_too(
    world, fake, media, monkeypatch
):
    """A turn commits while the pass answers button presses: its rows are newer than the
    pass's `now`, so not due in its reads; the wake-up they sent still ends the pass before
    the background, and the next one serves the answer first."""
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    for chat in BACKGROUND[:10]:
        await queue(world, chat, f"digest {chat}")
    real = sender._answer_callbacks

    async def callbacks(now):  # type: ignore[no-untyped-def]
        await real(now)
        clock.advance(seconds=0.001)
        await queue(world, str(RESIDENT), "answer", answer=True)  # a turn meanwhile
        sender.wake()

    monkeypatch.setattr(sender, "_answer_callbacks", callbacks)
    assert await sender.deliver_pending(paced=True) == 0
    monkeypatch.setattr(sender, "_answer_callbacks", real)
    await sender.deliver_pending(paced=True)
    chats = [c.params["chat_id"] for c in fake.calls_of("sendMessage")]
    assert chats[0] == RESIDENT and len(chats) == 11


async def test_a_burst_of_answers_is_claimed_in_one_statement(engine, world, fake, media):
    # Each claim is a write transaction; on SQLite each waited its turn behind intake's
    # writes (10-30 ms apart under load), so the burst's last answer waited for its claim.
    chats = [str(5000 + n) for n in range(12)]
    for chat in chats:
        await queue(world, chat, f"answer {chat}", answer=True)
    sender = make_sender(world, fake, media, concurrency=8)
    with counting(engine) as statements:
        assert await sender.deliver_pending() == len(chats)
    claims = [s for s in statements if s.lstrip().upper().startswith("UPDATE OUTBOX SET NEXT")]
    assert len(claims) == 1, claims
    assert all(len(fake.sent(int(chat))) == 1 for chat in chats)
    assert all(r.status == "sent" for r in await rows(world))


async def test_rows_claimed_ahead_that_cannot_start_are_released_at_once(world, fake, media):
    # The window lets 30 go: the rest of the chunk claimed with them is due again after the
    # pass (not held for CLAIM), and the next pass waits for the window, not for a retry.
    for chat in BACKGROUND[:40]:
        await queue(world, chat, f"digest {chat}")
    sender = make_sender(world, fake, media, concurrency=8)
    assert await sender.deliver_pending() == 30
    clock = world["uow"].clock
    pending = [r for r in await rows(world) if r.status == "pending"]
    assert len(pending) == 10 and all(r.next_attempt_at <= clock.now() for r in pending)
    assert sender.wake_at is not None and sender.wake_at > clock.now()
    assert await drain(sender) == 10
