"""The Telegram channel as `shuoshi run` runs it: dispatcher, outbox sender, polling through the
inbox or the webhook route, and the lease that lets one process per bot token do all of it.

Imported only when a token is configured: aiogram alone costs ~135 MB of memory, which a
process serving only the web chat (or, later, only WeChat) should not pay."""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.app import App
from bot.lease import Lease, LeasedWork
from bot.telegram import WEBHOOK_PATH
from bot.telegram.adapter import CHANNEL, TelegramChannel, TelegramPhotos, make_bot
from bot.telegram.polling import InboxProcessor, TelegramPoller, dispatcher_handler
from bot.telegram.sender import OutboxSender
from handlers.conversation import Conversations
from handlers.routes import ALL_ROUTES
from storage.inbox import SqlInbox

log = logging.getLogger(__name__)

__all__ = ["WEBHOOK_PATH", "TelegramService", "WebhookHandler"]


class TelegramService:
    """The Telegram channel: dispatcher, outbox sender, and polling or the webhook route."""

    def __init__(self, app: App, token: str) -> None:
        settings = app.settings.telegram
        self.app = app
        self.bot: Bot = make_bot(token, settings.api_base)
        self.sender = OutboxSender.from_settings(
            self.bot, app.sessions, app.media, app.clock, app.settings.outbox
        )
        conversations = Conversations(
            app.uow, app.workflow, TelegramPhotos(self.bot, app.media), ALL_ROUTES,
            default_locale=app.settings.locale,
        )  # fmt: skip
        self.dp: Dispatcher = TelegramChannel(conversations, self.sender).dispatcher()
        # Long polling goes through the inbox: an update is stored before it is confirmed.
        inbox = SqlInbox(app.sessions, CHANNEL)
        self.processor = InboxProcessor(inbox, app.clock, dispatcher_handler(self.dp, self.bot))
        self.poller = TelegramPoller(
            self.bot, inbox, app.clock, on_stored=self.processor.wake,
            allowed_updates=self.dp.resolve_used_update_types(),
        )  # fmt: skip
        # One process per bot token sends (the lease `telegram:<id>`), and one polls and
        # handles the inbox (`telegram-polling:<id>`): the same process unless roles split
        # them (docs/scaling.md).
        self.lease = Lease(app.sessions, app.clock, f"telegram:{self.bot.id}")
        self.sender.may_send = self.lease.valid
        self.leased = LeasedWork(self.lease, self._sender_tasks)
        self.polling_lease = Lease(app.sessions, app.clock, f"telegram-polling:{self.bot.id}")
        self.polled = LeasedWork(self.polling_lease, self._polling_tasks)
        self.keepers: list[asyncio.Task[None]] = []

    def _sender_tasks(self) -> list[asyncio.Task[Any]]:
        return [asyncio.create_task(self.sender.run(), name="telegram-sender")]

    def _polling_tasks(self) -> list[asyncio.Task[Any]]:
        return [
            asyncio.create_task(self.processor.run(), name="telegram-inbox"),
            asyncio.create_task(self.poller.run(), name="telegram-polling"),
        ]

    def register_webhook(self, web_app: web.Application) -> None:
        """Telegram posts updates here; the secret token header is checked, and Telegram gets
        its answer only after the update's transaction committed (not handled in background)."""
        secret = self._secret()
        if not secret:  # the settings refuse webhook mode without one; never serve it open
            raise RuntimeError("the Telegram webhook needs telegram.webhook_secret")
        WebhookHandler(
            dispatcher=self.dp, bot=self.bot, secret_token=secret, handle_in_background=False,
        ).register(web_app, path=WEBHOOK_PATH)  # fmt: skip

    def _secret(self) -> str | None:
        secret = self.app.settings.telegram.webhook_secret
        return secret.get_secret_value() if secret else None

    async def start(self, *, receive: bool = True, send: bool = True) -> None:
        """Take updates (`receive`: the webhook is set, or long polling under its lease) and
        deliver (`send`: the sender under its lease), as this process's roles say."""
        settings = self.app.settings.telegram
        if receive and settings.mode == "webhook":
            if settings.webhook_url:
                url = settings.webhook_url.rstrip("/") + WEBHOOK_PATH
                await self.bot.set_webhook(url, secret_token=self._secret())
        elif receive:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self.keepers.append(asyncio.create_task(self.polled.run(), name="telegram-poll-lease"))
        if send:
            self.keepers.append(asyncio.create_task(self.leased.run(), name="telegram-lease"))
        me = await self.bot.get_me()
        log.info("Telegram bot @%s is running (%s)", me.username, settings.mode)

    async def stop_receiving(self) -> None:
        """Stop polling, handling and the sender's loop: what was stored and not yet handled
        waits in the inbox for the next start (an update cut short is rolled back and handled
        again then). The lease is kept for a last flush of the outbox: see close()."""
        keepers, self.keepers = self.keepers, []
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        await self.polling_lease.release()

    async def close(self) -> None:
        """Let the leases go, so another process takes over at once, and close the session."""
        await self.polling_lease.release()
        await self.lease.release()
        await self.bot.session.close()


class WebhookHandler(SimpleRequestHandler):
    """aiogram's webhook handler, stricter: without a configured secret nobody gets in; the
    header is compared as bytes in constant time (aiogram's str comparison raises on non-ASCII
    input); a body that is not an update gets 400, not a traceback; an update of a kind this
    bot does not handle is acknowledged and dropped."""

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        if not self.secret_token:
            return False
        given = telegram_secret_token.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.secret_token.encode("utf-8"))

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not self.verify_secret(header, self.bot):
            return web.Response(body="Unauthorized", status=401)
        try:
            update = Update.model_validate(
                await request.json(loads=self.bot.session.json_loads), context={"bot": self.bot}
            )
        except ValueError as exc:  # not JSON, not UTF-8, or not an update (pydantic's error)
            log.info("webhook: refused a request that is not an update: %.200s", exc)
            return web.Response(body="Bad Request", status=400)
        try:
            update.event_type  # noqa: B018  (raises for a kind of update nobody handles here)
        except UpdateTypeLookupError:
            # aiogram would log it with a JSON dump that fails on a lone surrogate; a kind of
            # update this bot does not handle is taken and dropped, so Telegram does not resend.
            log.info("webhook: update %s is of a kind not handled here", update.update_id)
            return web.Response(body=self._build_response_writer(bot=self.bot, result=None))
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
            self.bot, update, **self.data
        )
        return web.Response(body=self._build_response_writer(bot=self.bot, result=result))

    __call__ = handle
