"""`shuoshi run`: one process with the web server (web chat, dashboard, Telegram webhook), the
Telegram channel when a token is configured, the outbox senders and the periodic sweep."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.app import App
from bot.lease import Lease, LeasedWork
from bot.scheduler import PeriodicWork, make_digests, make_sweeper, start_scheduler
from bot.telegram.adapter import CHANNEL, TelegramChannel, TelegramPhotos, make_bot
from bot.telegram.polling import InboxProcessor, TelegramPoller, dispatcher_handler
from bot.telegram.sender import OutboxSender
from bot.web.chat.app import setup_webchat
from bot.web.dashboard.app import dashboard_users_exist, setup_dashboard
from bot.web.dashboard.context import is_loopback, login_required
from handlers.conversation import Conversations
from handlers.routes import ALL_ROUTES
from storage.inbox import SqlInbox

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
# Uploads from the web chat: ten photos of up to 20 MB each are refused one by one, not here.
MAX_REQUEST_BYTES = 25 * 1024 * 1024
# Ctrl-C must stop the process promptly: open requests get this long, and so does each flush.
SHUTDOWN_SECONDS = 5.0


@dataclass
class Running:
    """What `serve` started, for the ready line and for tests."""

    url: str
    demo: bool
    login: bool
    telegram: str | None = None  # polling | webhook
    wakers: list[Callable[[], Any]] = field(default_factory=list)


async def serve(
    app: App, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None
) -> None:
    """Run everything until `stop` is set; on the way out, flush what was committed."""
    settings = app.settings
    # Behind a reverse proxy the process may listen on loopback yet serve the public: a
    # configured public_url means "not a local demo" (no role picker, dashboard login).
    demo = is_loopback(settings.web.host) and settings.web.public_url is None
    login = not demo or login_required(settings.web, await dashboard_users_exist(app))
    web_app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    webchat = setup_webchat(web_app, app, demo=demo)
    setup_dashboard(web_app, app, require_login=login)
    web_app.router.add_get("/", _home("/chat" if demo else "/dashboard"))
    running = Running(url=_url(settings.web.host, settings.web.port), demo=demo, login=login)
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(webchat.run(), name="webchat")]
    running.wakers.append(webchat.wake)

    telegram: _Telegram | None = None
    if settings.telegram.token is not None:
        telegram = _Telegram(app, settings.telegram.token.get_secret_value())
        if settings.telegram.mode == "webhook":
            telegram.register_webhook(web_app)
        running.wakers.append(telegram.sender.wake)
        running.telegram = settings.telegram.mode

    runner = web.AppRunner(web_app, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    scheduler = None
    try:
        await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        if telegram is not None:
            await telegram.start()
        work = PeriodicWork(app, make_sweeper(app), make_digests(app), after=running.wakers)
        scheduler = start_scheduler(app, work)
        if on_ready is not None:
            on_ready(running)
        await stop.wait()
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)  # a sweep cut short rolls back and runs next time
        if telegram is not None:
            await telegram.stop_receiving()
        await runner.cleanup()
        # What was committed goes out before we stop; the rest waits in the outbox. Each flush
        # is bounded: a slow network or a locked database must not keep Ctrl-C from working.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(webchat.deliver_pending(), SHUTDOWN_SECONDS)
        if telegram is not None:
            with contextlib.suppress(Exception):  # only while we hold the lease
                await asyncio.wait_for(telegram.sender.deliver_pending(), SHUTDOWN_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if telegram is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(telegram.close(), SHUTDOWN_SECONDS)


async def serve_telegram(app: App, stop: asyncio.Event) -> None:
    """The whole process; kept under its old name for callers that only think of Telegram."""
    await serve(app, stop)


class _Telegram:
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
        # One process per bot token sends, polls and handles the inbox: the lease holder.
        self.lease = Lease(app.sessions, app.clock, f"telegram:{self.bot.id}")
        self.sender.may_send = self.lease.valid
        self.leased = LeasedWork(self.lease, self._leased_tasks)
        self.keeper: asyncio.Task[None] | None = None

    def _leased_tasks(self) -> list[asyncio.Task[Any]]:
        tasks = [asyncio.create_task(self.sender.run(), name="telegram-sender")]
        if self.app.settings.telegram.mode != "webhook":
            tasks += [
                asyncio.create_task(self.processor.run(), name="telegram-inbox"),
                asyncio.create_task(self.poller.run(), name="telegram-polling"),
            ]
        return tasks

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

    async def start(self) -> None:
        settings = self.app.settings.telegram
        if settings.mode == "webhook":
            if settings.webhook_url:
                url = settings.webhook_url.rstrip("/") + WEBHOOK_PATH
                await self.bot.set_webhook(url, secret_token=self._secret())
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)
        self.keeper = asyncio.create_task(self.leased.run(), name="telegram-lease")
        me = await self.bot.get_me()
        log.info("Telegram bot @%s is running (%s)", me.username, settings.mode)

    async def stop_receiving(self) -> None:
        """Stop polling, handling and the sender's loop: what was stored and not yet handled
        waits in the inbox for the next start (an update cut short is rolled back and handled
        again then). The lease is kept for a last flush of the outbox: see close()."""
        if self.keeper is not None:
            self.keeper.cancel()
            await asyncio.gather(self.keeper, return_exceptions=True)
            self.keeper = None

    async def close(self) -> None:
        """Let the lease go, so another process takes over at once, and close the session."""
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


def _home(target: str) -> Callable[[web.Request], Any]:
    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return home


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
