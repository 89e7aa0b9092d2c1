"""The outbox sender against the fake Bot API: in order per chat, within Telegram's limits,
429 honoured, permanent failures kept with their reason, retries capped, nothing lost.

Time is the world's ManualClock: `drain` runs passes the way run() does, jumping the clock to
each planned wake-up instead of waiting, and the fake measures its limits on the same clock.
"""

from __future__ import annotations

import itertools
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.ratelimit import RateLimits
from bot.telegram.sender import CLAIM, OutboxSender, RetryPolicy
from storage.media import MediaStore
from storage.outbox import failed_deliveries, failed_delivery_count
from storage.rows import MessageLinkRow
from tests.fake_telegram import FakeTelegram
from tests.support.outbox import case_row, photo, queue, rows, submit
from tests.support.sending import drain, make_sender, texts

GROUP = -100  # the housing department's group in the world fixture


# --------------------------------------------------------------------------- 429


async def test_retry_after_is_honoured_then_delivered_in_order(world, fake, media):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    await queue(world, "5001", "first")
    await queue(world, "5001", "second")
    await queue(world, "5002", "elsewhere")
    assert await sender.deliver_pending() == 0  # the 429 pauses everyone, not only 5001
    first, second, elsewhere = await rows(world)
    assert (first.status, first.attempts) == ("pending", 1)
    assert "Retry in 3 seconds" in first.error
    assert first.next_attempt_at == clock.now() + timedelta(seconds=3)
    assert (second.status, elsewhere.status) == ("pending", "pending")
    assert sender.wake_at == clock.now() + timedelta(seconds=3)
    clock.advance(seconds=2.9)
    assert await sender.deliver_pending() == 0  # not before retry_after
    assert len(fake.calls_of("sendMessage")) == 1
    clock.advance(seconds=0.1)
    assert await drain(sender) == 3
    assert texts(fake, 5001) == ["first", "second"]
    assert texts(fake, 5002) == ["elsewhere"]
    receipts = [r for r in fake.receipts if r.chat_id == 5001]
    assert receipts[1].at - receipts[0].at >= 1.0
    assert fake.too_many_requests == 0


async def test_a_429_from_telegrams_own_limits_is_waited_out(world, fake, media):
    """A sender that paces nothing meets the fake's limits: it waits as told, loses nothing."""
    sender = make_sender(world, fake, media, limits=None)
    for i in range(4):
        await queue(world, "5001", f"m{i}")
    await drain(sender)
    assert texts(fake, 5001) == ["m0", "m1", "m2", "m3"]
    assert fake.too_many_requests == 3  # each message after the first met the 1/s limit once
    assert fake.max_in_window(1.0, 5001) == 1
    assert all(r.status == "sent" for r in await rows(world))


# --------------------------------------------------------------------------- permanent failures


async def test_blocked_user_is_failed_with_the_reason_and_the_case_flagged(
    world,
    fake,
    media,
    caplog,
):
    clock = world["uow"].clock
    number = await submit(world)
    version = (await case_row(world, number)).version
    sender = make_sender(world, fake, media)
    fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=7001)
    with caplog.at_level(logging.WARNING, logger="bot.telegram.sender"):
        assert await sender.deliver_pending() == 0
    (row,) = await rows(world)
    assert (row.status, row.attempts, row.error) == (
        "failed", 1, "Forbidden: bot was blocked by the user"
    )  # fmt: skip
    case = await case_row(world, number)
    assert case.delivery_failed and case.version == version + 1  # a stale save cannot undo it
    (record,) = [r for r in caplog.records if r.name == "bot.telegram.sender"]
    assert "7001" in record.getMessage() and number in record.getMessage()
    assert "blocked" in record.getMessage()
    clock.advance(hours=1)
    assert await drain(sender) == 0
    assert len(fake.calls_of("sendMessage")) == 1  # never tried again
    async with world["sessions"]() as session:
        (failed,) = await failed_deliveries(session)
        assert await failed_delivery_count(session) == 1
    assert (failed.chat_id, failed.case_number, failed.purpose) == ("7001", number, "case_card")
    assert failed.error == "Forbidden: bot was blocked by the user" and number in failed.text
    assert failed.failed_at == clock.now() - timedelta(hours=1)


@pytest.mark.parametrize(
    ("chat", "code", "description"),
    [
        ("5001", 400, "Bad Request: chat not found"),
        (str(GROUP), 403, "Forbidden: bot was kicked from the supergroup chat"),
        ("5001", 403, "Forbidden: user is deactivated"),
        (str(GROUP), 400, "Bad Request: not enough rights to send text messages to the chat"),
    ],
)
async def test_chats_telegram_will_not_deliver_to_are_failed_for_good(
    world,
    fake,
    media,
    chat,
    code,
    description,
):
    sender = make_sender(world, fake, media)
    fake.fail_next("sendMessage", code, description)
    await queue(world, chat, "hello")
    await queue(world, chat, "again")  # the next message is tried on its own, in order
    assert await drain(sender) == 1
    first, second = await rows(world)
    assert (first.status, first.error, second.status) == ("failed", description, "sent")


async def test_a_group_upgraded_to_a_supergroup_is_failed_with_its_new_id(world, fake, media):
    sender = make_sender(world, fake, media)
    fake.fail_next("sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat",
                   parameters={"migrate_to_chat_id": -1001234})  # fmt: skip
    await queue(world, str(GROUP), "hello")
    await drain(sender)
    (row,) = await rows(world)
    assert row.status == "failed" and "-1001234" in row.error


# --------------------------------------------------------------------------- transient failures


async def test_transient_errors_back_off_exponentially_up_to_a_cap_then_fail(
    world,
    fake,
    media,
):
    clock = world["uow"].clock
    retry = RetryPolicy(max_attempts=5, backoff_base=5, backoff_cap=12)
    sender = make_sender(world, fake, media, retry=retry)
    fake.fail_next("sendMessage", 502, "Bad Gateway", times=10)
    await queue(world, "5001", "hello")
    waits = []
    for attempt in range(1, 5):
        start = clock.now()
        assert await sender.deliver_pending() == 0
        (row,) = await rows(world)
        assert (row.status, row.attempts, row.error) == ("pending", attempt, "Bad Gateway")
        waits.append((row.next_attempt_at - start).total_seconds())
        assert sender.wake_at == row.next_attempt_at
        clock.advance(seconds=waits[-1] - 0.5)
        assert await sender.deliver_pending() == 0  # not before its time
        assert len(fake.calls_of("sendMessage")) == attempt
        clock.advance(seconds=0.5)
    assert waits == [5, 10, 12, 12]
    await sender.deliver_pending()
    (row,) = await rows(world)
    assert (row.status, row.attempts) == ("failed", 5)
    assert row.error == "gave up after 5 attempts: Bad Gateway"
    await sender.deliver_pending()
    assert sender.wake_at is None  # nothing left to wait for


async def test_a_photo_missing_from_the_store_is_retried_then_failed(world, fake, media):
    sender = make_sender(world, fake, media, retry=RetryPolicy(max_attempts=2, backoff_base=1))
    number = await submit(world)  # its card to the grid leader goes out; this one cannot
    await queue(world, "5001", "with a photo", photos=["0" * 64])
    await drain(sender)
    card, with_photo = await rows(world)
    assert card.status == "sent"
    assert with_photo.status == "failed" and "FileNotFoundError" in with_photo.error
    assert not (await case_row(world, number)).delivery_failed


async def test_one_retrying_chat_does_not_hold_up_the_others(world, fake, media):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    fake.fail_next("sendMessage", 500, "Internal Server Error", times=3, chat_id=5001)
    await queue(world, "5001", "a1")
    await queue(world, "5001", "a2")
    await queue(world, "5002", "b1")
    await queue(world, "5003", "c1")
    assert await sender.deliver_pending() == 2
    assert texts(fake, 5002) == ["b1"] and texts(fake, 5003) == ["c1"]
    await queue(world, "5002", "b2")
    clock.advance(seconds=1)
    assert await sender.deliver_pending() == 1  # b2; 5001 still waits for its backoff
    assert texts(fake, 5002) == ["b1", "b2"] and texts(fake, 5001) == []
    await drain(sender)
    assert texts(fake, 5001) == ["a1", "a2"]


# --------------------------------------------------------------------------- limits


async def test_a_hundred_messages_for_one_group_keep_twenty_a_minute(world, fake, media):
    clock = world["uow"].clock
    start = clock.now()
    sender = make_sender(world, fake, media)
    for i in range(100):
        await queue(world, str(GROUP), f"n{i:03d}")
    assert await drain(sender) == 100
    assert texts(fake, GROUP) == [f"n{i:03d}" for i in range(100)]
    assert fake.max_in_window(60.0, GROUP) == 20
    assert fake.max_in_window(1.0, GROUP) == 1
    assert fake.too_many_requests == 0
    # 20 at one a second, the next 20 when the window frees: the last at 4 min 19 s.
    assert fake.receipts[0].at == start.timestamp()
    assert fake.receipts[-1].at - fake.receipts[0].at == 4 * 60 + 19


async def test_one_message_a_second_in_a_chat(world, fake, media):
    sender = make_sender(world, fake, media)
    for i in range(5):
        await queue(world, "5001", f"m{i}")
    await queue(world, "5002", "other")
    assert await sender.deliver_pending() == 2  # one for each chat
    await drain(sender)
    times = [r.at for r in fake.receipts if r.chat_id == 5001]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [1.0] * 4
    assert texts(fake, 5001) == [f"m{i}" for i in range(5)]


async def test_thirty_a_second_overall_across_many_chats(world, fake, media):
    clock = world["uow"].clock
    start = clock.now()
    sender = make_sender(world, fake, media, concurrency=8)
    for i in range(100):
        await queue(world, str(10_000 + i), f"hi {i}")
    assert await drain(sender) == 100
    assert fake.max_in_window(1.0) == 30
    assert fake.too_many_requests == 0
    assert sorted(r.chat_id for r in fake.receipts) == [10_000 + i for i in range(100)]
    assert fake.receipts[0].at == start.timestamp()
    assert fake.receipts[-1].at - fake.receipts[0].at == 3.0  # 30, 30, 30 and 10 more


async def test_with_the_safety_margin_each_chat_keeps_its_order_and_every_limit(world, fake, media):
    """The sender as `shuoshi run` paces it (a 50 ms margin on each limit, 8 calls in flight
    to different chats): each chat's messages in the order written, 1.05 s apart, a group's
    20 a minute, 30 in any second overall, and no 429."""
    sender = make_sender(world, fake, media, RateLimits(), concurrency=8)
    chats = [str(20_000 + i) for i in range(40)]
    for i in range(3):
        for chat in chats:
            await queue(world, chat, f"{chat}/{i}")
        await queue(world, str(GROUP), f"group/{i}")
    for i in range(3, 25):
        await queue(world, str(GROUP), f"group/{i}")
    assert await drain(sender) == 3 * len(chats) + 25
    assert fake.too_many_requests == 0
    assert fake.max_in_window(1.0) == 30
    assert fake.max_in_window(60.0, GROUP) == 20
    for chat in chats:
        assert texts(fake, int(chat)) == [f"{chat}/{i}" for i in range(3)]
        times = [r.at for r in fake.receipts if r.chat_id == int(chat)]
        assert all(round(b - a, 6) >= 1.05 for a, b in itertools.pairwise(times))
    assert texts(fake, GROUP) == [f"group/{i}" for i in range(25)]
    group = [r.at for r in fake.receipts if r.chat_id == GROUP]
    assert round(group[20] - group[0], 6) == 60.05  # the 21st when the first left the minute


async def test_an_album_and_its_card_are_spaced_and_counted_per_photo(world, fake, media):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    shas = [photo(media, c) for c in ("red", "green", "blue")]
    await queue(world, str(GROUP), "card with photos", photos=shas)
    assert await sender.deliver_pending() == 0  # the album went; its card waits its turn
    (row,) = await rows(world)
    assert row.status == "pending" and row.payload["_parts_done"] == 1
    assert len(fake.sent(GROUP)) == 3
    assert sender.wake_at == clock.now() + timedelta(seconds=3)  # three photos, three seconds
    await drain(sender)
    card = fake.sent(GROUP)[-1]
    assert card["text"] == "card with photos" and card["reply_markup"]
    assert [r.cost for r in fake.receipts] == [3, 1] and fake.too_many_requests == 0
    assert fake.receipts[1].at - fake.receipts[0].at == 3.0
    (row,) = await rows(world)
    assert (row.status, row.attempts) == ("sent", 1)


# --------------------------------------------------------------------------- crash window


async def test_a_send_whose_row_could_not_be_marked_is_not_sent_again(world, fake, media):
    sender = make_sender(world, fake, media)
    await queue(world, "5001", "once")
    real_mark = sender._mark_sent

    async def database_gone(row, message_id):
        raise ConnectionError("database went away")

    sender._mark_sent = database_gone
    assert await sender.deliver_pending() == 0  # sent, but the row is still pending
    sender._mark_sent = real_mark
    world["uow"].clock.advance(seconds=5)
    assert await sender.deliver_pending() == 0  # still claimed by the try that went wrong
    world["uow"].clock.advance(seconds=CLAIM.total_seconds())
    assert await sender.deliver_pending() == 1
    assert texts(fake, 5001) == ["once"]  # recorded, not sent again


async def test_a_crash_between_send_and_mark_sends_once_more_and_never_loses(
    world,
    fake,
    media,
):
    sender = make_sender(world, fake, media)
    await queue(world, "5001", "important")

    async def crash(row, message_id):
        raise ConnectionError("the process died before the row was marked")

    sender._mark_sent = crash
    assert await sender.deliver_pending() == 0
    (row,) = await rows(world)
    assert row.status == "pending"  # the committed row survived the crash
    restarted = make_sender(world, fake, media)  # a new process knows nothing of the send
    world["uow"].clock.advance(seconds=1)
    assert await drain(restarted) == 1
    assert texts(fake, 5001) == ["important", "important"]  # at most one duplicate
    assert await drain(restarted) == 0


# --------------------------------------------------------------------------- the rest


async def test_button_presses_are_answered_ahead_of_the_queue(world, fake, media):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    await queue(world, "5001", "card")
    await sender.deliver_pending()
    press = fake.press(5001, 5001, fake.sent(5001)[0]["message_id"], "a:ac:x")
    query = press["callback_query"]["id"]
    await queue(world, "5001", "accepted", callback_id=query, callback_answer="已签收")
    assert await sender.deliver_pending() == 0  # the chat's next message waits a second...
    (answer,) = fake.calls_of("answerCallbackQuery")  # ...but the spinner stops at once
    assert answer.params["callback_query_id"] == query and answer.params["text"] == "已签收"
    assert answer.error is None
    clock.advance(seconds=1)
    assert await sender.deliver_pending() == 1
    assert texts(fake, 5001) == ["card", "accepted"]
    assert len(fake.calls_of("answerCallbackQuery")) == 1  # answered once


async def test_web_chat_rows_are_left_to_the_web_channel(world, fake, media):
    sender = make_sender(world, fake, media)
    await queue(world, "w-42", "for the browser", channel="web")
    await queue(world, "5001", "for telegram")
    assert await drain(sender) == 1
    web, telegram = await rows(world)
    assert (web.status, web.attempts, telegram.status) == ("pending", 0, "sent")
    assert [c.params["chat_id"] for c in fake.calls_of("sendMessage")] == [5001]


async def test_sent_cards_are_linked_to_their_case(world, fake, media):
    number = await submit(world)
    sender = make_sender(world, fake, media)
    await sender.deliver_pending()
    async with world["sessions"]() as session:
        links = (await session.execute(select(MessageLinkRow))).scalars().all()
    sent = fake.sent(7001)
    assert [(link.chat_id, link.message_id) for link in links] == [
        ("7001", str(sent[-1]["message_id"]))
    ]
    assert number in sent[-1]["text"]


async def test_run_wakes_when_a_chat_may_send_again(world, fake, media):
    clock = world["uow"].clock
    sender = make_sender(world, fake, media)
    assert await sender.deliver_pending() == 0
    assert sender.wake_at is None and sender.seconds_until_wake(5.0) == 5.0  # idle
    await queue(world, "5001", "one")
    await queue(world, "5001", "two")
    assert await sender.deliver_pending() == 1
    assert sender.wake_at == clock.now() + timedelta(seconds=1)
    assert sender.seconds_until_wake(5.0) == 1.0
    assert sender.seconds_until_wake(0.25) == 0.25  # never longer than idle (other writers)
    clock.advance(seconds=1)
    assert sender.seconds_until_wake(5.0) == 0.0


async def test_from_settings_keeps_telegrams_limits(world, fake, media):
    from bot.config import OutboxSettings

    settings = OutboxSettings(group_messages_per_minute=5, max_attempts=3, concurrency=4)
    sender = OutboxSender.from_settings(
        fake.make_bot(), world["sessions"], media, world["uow"].clock, settings
    )
    assert sender.limiter.limits == RateLimits(per_second=30, chat_interval=1.0,
                                               group_per_minute=5, answer_reserve=6,
                                               answer_wait=0.25)  # fmt: skip
    assert sender.retry == RetryPolicy(max_attempts=3, backoff_base=5.0, backoff_cap=900.0)
    assert (sender.concurrency, sender.batch_size) == (4, 200)


async def test_a_photo_telegram_will_not_hand_over_is_refused_clearly(tmp_path):
    from bot.telegram.adapter import TelegramPhotos
    from handlers.messages import PhotoRef
    from storage.media import MediaRefused

    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        big = fake.register_file(None, folder="photos", ext="jpg", size=25 * 1024 * 1024)
        with pytest.raises(MediaRefused) as info:
            await TelegramPhotos(bot, MediaStore(tmp_path)).save(
                None, "telegram", PhotoRef(big.file_id)
            )
        assert info.value.code == "too_large"
        await bot.session.close()
