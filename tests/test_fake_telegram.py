"""The fake Telegram server is only useful if the real aiogram Bot works against it unchanged."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from tests.fake_telegram import FakeTelegram

CHAT = 4242
GROUP = -1001234567890


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = fake.make_bot()
    yield bot
    await bot.session.close()


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(text=text, callback_data=data) for text, data in pairs]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


async def test_get_me_with_a_plain_aiohttp_session(fake: FakeTelegram) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    bot = Bot(token=fake.token, session=session)
    try:
        me = await bot.get_me()
    finally:
        await bot.session.close()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "shuoshi_test_bot"
    assert fake.calls_of("getMe")[0].method == "getMe"


async def test_wrong_token_is_unauthorized(fake: FakeTelegram) -> None:
    bot = Bot(token="654321:WRONG", session=fake.make_bot().session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await bot.session.close()


async def test_send_message_records_decoded_keyboard(bot: Bot, fake: FakeTelegram) -> None:
    fake.user(CHAT, "王五")
    first = await bot.send_message(CHAT, "请选择", reply_markup=keyboard(("受理", "c:1")))
    second = await bot.send_message(CHAT, "第二条")

    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.id == 123456
    assert first.reply_markup is not None
    assert first.reply_markup.inline_keyboard[0][0].callback_data == "c:1"
    params = fake.calls_of("sendMessage")[0].params
    assert params["chat_id"] == CHAT
    assert params["text"] == "请选择"
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "受理", "callback_data": "c:1"}]]
    }
    assert [m["text"] for m in fake.sent(CHAT)] == ["请选择", "第二条"]
    assert fake.last_sent(CHAT)["message_id"] == 2
    assert fake.sent(999) == []


async def test_html_parse_mode_is_rendered_and_validated(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(CHAT, "<b>案件</b> 1 &lt; 2", parse_mode="HTML")
    assert sent.text == "案件 1 < 2"
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(CHAT, "1 < 2", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="too long"):
        await bot.send_message(CHAT, "长" * 4097)


async def test_send_photo_upload(bot: Bot, fake: FakeTelegram) -> None:
    data = b"\xff\xd8not-really-a-jpeg" * 100
    sent = await bot.send_photo(
        GROUP, BufferedInputFile(data, filename="p.jpg"), caption="井盖破损"
    )

    assert sent.chat.type == "supergroup" and sent.chat.title
    assert sent.caption == "井盖破损"
    assert sent.photo is not None and len(sent.photo) > 1
    assert [p.width for p in sent.photo] == sorted(p.width for p in sent.photo)
    assert sent.photo[-1].file_size == len(data)
    call = fake.calls_of("sendPhoto")[0]
    assert [u.data for u in call.files.values()] == [data]
    assert call.params["photo"].startswith("attach://")
    # The file_id Telegram returned can be sent again without uploading.
    again = await bot.send_photo(CHAT, sent.photo[-1].file_id)
    assert again.photo is not None and again.photo[-1].file_id == sent.photo[-1].file_id


async def test_send_media_group(bot: Bot, fake: FakeTelegram) -> None:
    media = [
        InputMediaPhoto(media=BufferedInputFile(b"one" * 50, "1.jpg"), caption="现场"),
        InputMediaPhoto(media=BufferedInputFile(b"two" * 70, "2.jpg")),
    ]
    sent = await bot.send_media_group(CHAT, media=media)

    assert [m.message_id for m in sent] == [1, 2]
    assert sent[0].media_group_id == sent[1].media_group_id is not None
    assert sent[0].caption == "现场" and sent[1].caption is None
    assert sent[1].photo is not None and sent[1].photo[-1].file_size == 210
    assert len(fake.calls_of("sendMediaGroup")[0].files) == 2
    assert len(fake.sent(CHAT)) == 2


async def test_callback_query_round_trip(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(CHAT, "请评价", reply_markup=keyboard(("满意", "rate:5")))
    update = fake.press(CHAT, CHAT, sent.message_id, "rate:5")
    with pytest.raises(ValueError, match="no button"):
        fake.press(CHAT, CHAT, sent.message_id, "rate:1")

    updates = await bot.get_updates(timeout=1)
    query = updates[0].callback_query
    assert query is not None and query.id == update["callback_query"]["id"]
    assert query.data == "rate:5"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="谢谢")
    assert fake.calls_of("answerCallbackQuery")[0].params["text"] == "谢谢"
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("nonsense")


async def test_get_updates_long_poll_and_offset(bot: Bot, fake: FakeTelegram) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_calls("getUpdates", 1, answered=False)
    queued = fake.send_text(CHAT, fake.user(CHAT, "李四"), "/start")

    updates = await asyncio.wait_for(poll, 3)
    assert [u.update_id for u in updates] == [queued["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/start"
    assert message.from_user is not None and message.from_user.language_code == "zh-hans"
    assert message.entities is not None and message.entities[0].type == "bot_command"

    # Unconfirmed updates come again; an offset past them confirms and drops them.
    assert len(await bot.get_updates()) == 1
    second = fake.send_location(CHAT, CHAT, 36.65, 117.12)
    updates = await bot.get_updates(offset=queued["update_id"] + 1)
    assert [u.update_id for u in updates] == [second["update_id"]]
    assert updates[0].message is not None and updates[0].message.location is not None

    # A repeated update (same update_id) is delivered again even though it was confirmed.
    fake.queue(queued)
    updates = await bot.get_updates(offset=second["update_id"] + 1)
    assert [u.update_id for u in updates] == [queued["update_id"]]


async def test_get_updates_times_out_empty(bot: Bot, fake: FakeTelegram) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await bot.get_updates(timeout=1) == []
    assert loop.time() - started >= 0.9


async def test_get_file_and_download(bot: Bot, fake: FakeTelegram) -> None:
    data = bytes(range(256)) * 40
    update = fake.send_photo(CHAT, CHAT, data, caption="路灯不亮")
    largest = update["message"]["photo"][-1]
    assert largest["file_size"] == len(data)

    file = await bot.get_file(largest["file_id"])
    assert file.file_path and file.file_size == len(data)
    downloaded = await bot.download(file)
    assert downloaded is not None and downloaded.read() == data

    too_big = fake.send_document(CHAT, CHAT, "big.mp4", file_size=21 * 1024 * 1024)
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(too_big["message"]["document"]["file_id"])


async def test_user_photo_gets_real_thumbnails(bot: Bot, fake: FakeTelegram) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (1000, 750), "orange").save(buf, "PNG")
    update = fake.send_photo(CHAT, CHAT, buf.getvalue())

    sizes = update["message"]["photo"]
    assert [(p["width"], p["height"]) for p in sizes] == [
        (90, 68),
        (320, 240),
        (800, 600),
        (1000, 750),
    ]
    thumb = await bot.download(sizes[0]["file_id"])
    assert thumb is not None
    with Image.open(thumb) as image:
        assert image.size == (90, 68)


async def test_injected_failures(bot: Bot, fake: FakeTelegram) -> None:
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as excinfo:
        await bot.send_message(CHAT, "hi")
    assert excinfo.value.retry_after == 7

    fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user", chat_id=CHAT)
    assert (await bot.send_message(CHAT + 1, "other chat")).text == "other chat"
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(CHAT, "hi")

    assert (await bot.send_message(CHAT, "hi")).message_id == 1
    assert [c.error is not None for c in fake.calls_of("sendMessage")] == [
        True,
        False,
        True,
        False,
    ]


async def test_other_methods_answer_ok(bot: Bot, fake: FakeTelegram) -> None:
    from aiogram.types import BotCommand

    assert await bot.set_my_commands([BotCommand(command="report", description="上报")])
    assert fake.calls_of("setMyCommands")[0].params["commands"][0]["command"] == "report"
    assert await bot.send_chat_action(CHAT, "typing")
    assert await bot.delete_message(CHAT, 1)
    assert await bot.set_webhook("https://example.invalid/hook", secret_token="s3cret")
    assert fake.webhook_url == "https://example.invalid/hook"
    assert fake.webhook_secret == "s3cret"
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert fake.webhook_url is None


async def test_dispatcher_polling_end_to_end(bot: Bot, fake: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    try:
        fake.send_text(CHAT, CHAT, "你好")
        fake.send_text(GROUP, CHAT, "群里说一句")
        sent = await fake.wait_sent(CHAT, 1)
        await fake.wait_sent(GROUP, 1)
        assert sent[0]["text"] == "echo: 你好"
        assert fake.last_sent(GROUP)["text"] == "echo: 群里说一句"
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 5)


async def test_webhook_delivery_executes_the_reply_method(bot: Bot, fake: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(message: Message) -> object:
        return message.answer(f"echo: {message.text}")  # answered inside the webhook reply

    dp = Dispatcher()
    dp.include_router(router)
    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="s3cret", handle_in_background=False).register(
        app, path="/hook"
    )
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/hook"))
        update = fake.send_text(CHAT, CHAT, "网格员你好")
        status, _ = await fake.post_update_to(url, update, secret_token="wrong")
        assert status == 401
        assert await fake.post_update_to(url, update, secret_token="s3cret") == (200, "")
        assert fake.last_sent(CHAT)["text"] == "echo: 网格员你好"

        await bot.set_webhook(url, secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        fake.send_text(CHAT, CHAT, "第二句")
        answers = await fake.flush_webhook()
        assert [status for status, _ in answers] == [200, 200]
        assert fake.pending_updates() == []
        assert fake.last_sent(CHAT)["text"] == "echo: 第二句"


async def test_wait_sent_reports_what_was_sent(fake: FakeTelegram) -> None:
    with pytest.raises(AssertionError, match="expected 1 messages to chat 1"):
        await fake.wait_sent(1, 1, timeout=0.05)
