"""The outbox sender against the fake Bot API: retry_after honoured, blocked users failed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.telegram import OutboxSender
from handlers.messages import Button, Outgoing
from storage.media import MediaStore
from storage.rows import MessageLinkRow, OutboxRow
from tests.fake_telegram import FakeTelegram
from tests.test_notify import world  # noqa: F401  (fixture)
from workflow.ports import OutgoingMessage


async def queue(w, chat: str, text: str, case: str | None = None) -> None:
    async with w["uow"]() as uow:
        message = Outgoing(chat_id=chat, text=text, buttons=[[Button("ok", "a:ac:x")]],
                           case_number=case, purpose="case_card")  # fmt: skip
        await uow.outbox.add(OutgoingMessage("telegram", chat, message.payload(), case))
        await uow.commit()


async def rows(w) -> list[OutboxRow]:
    async with w["sessions"]() as session:
        return list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def test_retry_after_then_delivered_in_order(world, tmp_path):  # noqa: F811
    clock = world["uow"].clock
    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        sender = OutboxSender(bot, world["sessions"], MediaStore(tmp_path), clock)
        fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
        await queue(world, "5001", "first")
        await queue(world, "5001", "second")
        assert await sender.deliver_pending() == 0  # the second waits behind the first
        first, second = await rows(world)
        assert (first.status, first.attempts, second.status) == ("pending", 1, "pending")
        assert first.next_attempt_at == clock.now() + timedelta(seconds=3)
        assert await sender.deliver_pending() == 0  # not before retry_after
        clock.advance(seconds=3)
        assert await sender.deliver_pending() == 2
        assert [m["text"] for m in fake.sent(5001)] == ["first", "second"]
        await bot.session.close()


async def test_blocked_user_is_failed_with_the_reason_and_not_retried(world, tmp_path):  # noqa: F811
    clock = world["uow"].clock
    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        sender = OutboxSender(bot, world["sessions"], MediaStore(tmp_path), clock)
        fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
        await queue(world, "5001", "hello", case=None)
        await sender.deliver_pending()
        (row,) = await rows(world)
        assert row.status == "failed" and "blocked" in row.error
        clock.advance(hours=1)
        assert await sender.deliver_pending() == 0
        await bot.session.close()


async def test_sent_cards_are_linked_to_their_case(world, tmp_path):  # noqa: F811
    from workflow.commands import ActorRef, SubmitCase
    from workflow.model import Role

    n = await world["wf"].submit(world["uow"](), SubmitCase(
        actor=ActorRef(world["resident"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="x"))  # fmt: skip
    async with FakeTelegram() as fake:
        bot = fake.make_bot()
        sender = OutboxSender(bot, world["sessions"], MediaStore(tmp_path), world["uow"].clock)
        await sender.deliver_pending()
        async with world["sessions"]() as session:
            links = (await session.execute(select(MessageLinkRow))).scalars().all()
        sent = fake.sent(7001)
        assert [(link.chat_id, link.message_id) for link in links] == [
            ("7001", str(sent[-1]["message_id"]))
        ]
        assert n in sent[-1]["text"]
        await bot.session.close()


async def test_a_photo_telegram_will_not_hand_over_is_refused_clearly(tmp_path):
    import pytest

    from bot.telegram import TelegramPhotos
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
