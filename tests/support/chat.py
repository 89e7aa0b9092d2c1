"""Driving the bot's conversations: `Bot` through the conversation layer on the world fixture,
`Harness` (the `harness` fixture) through aiogram against the fake Bot API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import pytest
from sqlalchemy import select

from bot.telegram.adapter import TelegramChannel, TelegramPhotos
from bot.telegram.sender import OutboxSender
from handlers.conversation import Conversations
from handlers.messages import Incoming, PhotoRef
from handlers.notify import Notifier
from handlers.routes import ALL_ROUTES
from storage.media import MediaStore
from storage.rows import OutboxRow
from tests.fake_telegram import FakeTelegram
from tests.support.images import png
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

RESIDENT, LEADER, TOWNSHIP, COUNTY, HANDLER, DEPT_GROUP = 5001, 7001, 7002, 7003, 7004, -100

ids = itertools.count(1)


class Photos:
    """Stands in for the channel download: the bytes behind a file id go to the media store."""

    def __init__(self, media: MediaStore) -> None:
        self.media = media
        self.files = {"red": png("red"), "blue": png("blue")}

    async def save(self, uow, channel: str, ref: PhotoRef) -> int:
        row = await self.media.save_photo(
            uow.session, self.files[ref.file_id], now=uow.clock.now(), channel=channel,
            channel_file_id=ref.file_id,
        )  # fmt: skip
        return row.id


class Bot:
    def __init__(self, w, tmp_path) -> None:
        self.world = w
        self.conv = Conversations(
            w["uow"], Workflow(WorkflowPolicy(), on_events=Notifier()),
            Photos(MediaStore(tmp_path / "media")), ALL_ROUTES,
        )  # fmt: skip

    async def send(self, user: str, chat: str | None = None, **kw):
        n = next(ids)
        chat = chat or user
        msg = Incoming(
            channel="telegram", chat_id=chat, user_id=user,
            chat_type="private" if chat == user else "supergroup",
            message_id=f"m{n}", update_key=f"u{n}", **kw,
        )  # fmt: skip
        return await self.conv.handle(msg)

    async def outbox(self, chat: str) -> list[OutboxRow]:
        async with self.world["sessions"]() as session:
            rows = await session.execute(
                select(OutboxRow).where(OutboxRow.chat_id == chat).order_by(OutboxRow.id)
            )
            return list(rows.scalars())

    async def button(self, chat: str, prefix: str) -> str:
        for row in reversed(await self.outbox(chat)):
            for line in row.payload["buttons"]:
                for b in line:
                    if b["data"].startswith(prefix):
                        return b["data"]
        raise AssertionError(f"no {prefix} button in chat {chat}")

    async def report(self, user: str, text: str) -> None:
        """A resident's whole report with the first choice at every step."""
        await self.send(user, text="📝 我要说事")
        await self.press(user, "cat:")
        await self.send(user, text=text)
        for prefix in ("ph:", "loc:", "ct:", "cf:"):
            await self.press(user, prefix)

    async def press(self, user: str, prefix: str, chat: str | None = None):
        data = await self.button(chat or user, prefix)
        return await self.send(user, chat, callback_data=data, callback_id=f"c{next(ids)}")


class Harness:
    def __init__(self, fake: FakeTelegram, w: dict, media: MediaStore) -> None:
        from aiogram.client.default import DefaultBotProperties
        from aiogram.enums import ParseMode

        self.fake = fake
        self.w = w
        self.bot = fake.make_bot(default=DefaultBotProperties(parse_mode=ParseMode.HTML))
        conversations = Conversations(
            w["uow"], Workflow(WorkflowPolicy(), on_events=Notifier()),
            TelegramPhotos(self.bot, media), ALL_ROUTES,
        )  # fmt: skip
        self.sender = OutboxSender(self.bot, w["sessions"], media, w["uow"].clock)
        self.channel = TelegramChannel(conversations, self.sender)
        self.dp = self.channel.dispatcher()

    async def __aenter__(self) -> Harness:
        self.tasks = [
            asyncio.create_task(self.dp.start_polling(self.bot, handle_signals=False,
                                                      polling_timeout=1)),
            asyncio.create_task(self.sender.run(idle_seconds=0.05)),
        ]  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError):
            await self.dp.stop_polling()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bot.session.close()

    def count(self, chat: int) -> int:
        return len(self.fake.sent(chat))

    async def says(self, chat: int, before: int, *, n: int = 1) -> list[dict]:
        return (await self.fake.wait_sent(chat, before + n))[before:]

    async def press(self, chat: int, user: int, prefix: str) -> None:
        for message in reversed(self.fake.sent(chat)):
            for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                for button in row:
                    if button.get("callback_data", "").startswith(prefix):
                        self.fake.press(chat, user, message["message_id"], button["callback_data"])
                        return
        raise AssertionError(f"no {prefix!r} button in chat {chat}")

    async def until(self, chat: int, before: int, needle: str) -> list[dict]:
        """Wait for the bot's messages to a chat until one contains `needle`."""
        count = before + 1
        while True:
            new = (await self.fake.wait_sent(chat, count))[before:]
            if any(needle in text_of(m) for m in new):
                return new
            count += 1

    async def act(self, chat: int, user: int, action, *, n: int = 1, wait_chat=None) -> list[dict]:
        target = wait_chat or chat
        before = self.count(target)
        action()
        return await self.says(target, before, n=n)


@pytest.fixture
async def harness(world, tmp_path):
    async with FakeTelegram() as fake:
        async with Harness(fake, world, MediaStore(tmp_path / "media")) as h:
            yield h


def text_of(message: dict) -> str:
    return message.get("text") or message.get("caption") or ""
