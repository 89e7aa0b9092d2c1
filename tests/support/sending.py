"""Driving the Telegram outbox sender on the world's clock against the fake Bot API (shared by
the sender's tests): `make_sender` with Telegram's limits, `drain` as run() passes."""

from __future__ import annotations

from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode

from bot.ratelimit import RateLimiter, RateLimits
from bot.telegram.sender import OutboxSender
from storage.media import MediaStore
from tests.fake_telegram import FakeTelegram

TELEGRAM = RateLimits(margin=0.0)  # 30/s, 1/s per chat, 20/min per group, exactly


def make_sender(
    w, fake: FakeTelegram, media: MediaStore, limits: RateLimits | None = TELEGRAM, **kw
) -> OutboxSender:
    """A sender with Telegram's limits on the world's clock; the fake enforces the same."""
    clock = w["uow"].clock
    fake.enforce_limits(now=lambda: clock.now().timestamp())
    limiter = RateLimiter(clock, limits) if limits is not None else None
    return OutboxSender(fake.make_bot(), w["sessions"], media, clock, limiter=limiter, **kw)


async def drain(sender: OutboxSender, rounds: int = 2000) -> int:
    """Passes as run() makes them, the clock jumping to each wake-up; returns rows sent."""
    sent = 0
    for _ in range(rounds):
        sent += await sender.deliver_pending()
        if sender.wake_at is None:
            return sent
        if sender.wake_at > sender.clock.now():
            sender.clock.set(sender.wake_at)
    raise AssertionError("the outbox did not drain")


def texts(fake: FakeTelegram, chat: int) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in fake.sent(chat)]


def sender_for(fake: FakeTelegram, world, media: MediaStore) -> OutboxSender:
    """An unpaced sender with HTML messages, as the card tests drive it."""
    bot = fake.make_bot(default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    return OutboxSender(bot, world["sessions"], media, world["uow"].clock)


async def deliver_all(sender: OutboxSender) -> None:
    """Passes until nothing is left (a pass sends one row per chat)."""
    while await sender.deliver_pending():
        pass


def data_of(message: dict) -> list[str]:
    """The callback data of a Telegram message's inline buttons."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row]
