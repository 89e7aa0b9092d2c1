"""`shuoshi run`: the Telegram channel (polling or webhook) and the outbox sender in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.app import App
from bot.telegram import OutboxSender, TelegramChannel, TelegramPhotos, make_bot
from handlers.conversation import Conversations
from handlers.routes import ALL_ROUTES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"


async def serve_telegram(app: App, stop: asyncio.Event) -> None:
    """Run until `stop` is set; on the way out, finish the update in hand and flush the outbox."""
    settings = app.settings.telegram
    assert settings.token is not None
    bot = make_bot(settings.token.get_secret_value(), settings.api_base)
    sender = OutboxSender.from_settings(
        bot, app.sessions, app.media, app.clock, app.settings.outbox
    )
    conversations = Conversations(
        app.uow, app.workflow, TelegramPhotos(bot, app.media), ALL_ROUTES,
        default_locale=app.settings.locale,
    )  # fmt: skip
    channel = TelegramChannel(conversations, sender)
    dp = channel.dispatcher()
    sending = asyncio.create_task(sender.run())
    runner: web.AppRunner | None = None
    polling: asyncio.Task[None] | None = None
    try:
        if settings.mode == "webhook":
            runner = await _start_webhook(app, bot, dp)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
            polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
        me = await bot.get_me()
        log.info("Telegram bot @%s is running (%s)", me.username, settings.mode)
        await stop.wait()
    finally:
        if polling is not None:
            with contextlib.suppress(RuntimeError):
                await dp.stop_polling()
            await asyncio.gather(polling, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        await sender.deliver_pending()  # what was committed goes out before we stop
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        await bot.session.close()


async def _start_webhook(app: App, bot: Bot, dp: Dispatcher) -> web.AppRunner:
    """Telegram posts updates here; the secret token header is checked, and Telegram gets its
    answer only after the update's transaction committed (not handled in the background)."""
    settings = app.settings.telegram
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    web_app = web.Application()
    SimpleRequestHandler(
        dispatcher=dp, bot=bot, secret_token=secret, handle_in_background=False
    ).register(web_app, path=WEBHOOK_PATH)
    runner = web.AppRunner(web_app)
    await runner.setup()
    await web.TCPSite(runner, app.settings.web.host, app.settings.web.port).start()
    if settings.webhook_url:
        await bot.set_webhook(settings.webhook_url.rstrip("/") + WEBHOOK_PATH, secret_token=secret)
    return runner
