"""`shuoshi run`: one process with the web server (web chat, dashboard, Telegram webhook), the
Telegram channel when a token is configured, the WeChat Official Account when an app id is
(callbacks at /wechat/mp), the WeCom app when a corp id is (callbacks at /wecom/callback), the
outbox senders and the periodic sweep; or a part of that, as
`[process] roles` says (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.app import App
from bot.scheduler import PeriodicWork, make_digests, make_sweeper, start_scheduler
from bot.telegram import WEBHOOK_PATH  # noqa: F401 (re-exported for callers and tests)
from bot.web.chat.app import setup_webchat
from bot.web.chat.staff import setup_staff_desk
from bot.web.dashboard.app import dashboard_users_exist, setup_dashboard
from bot.web.dashboard.context import is_loopback, login_required
from storage.wakeups import RESYNC, Wakeups, listen, listens, outbox_topic

if TYPE_CHECKING:
    from bot.telegram.service import TelegramService
    from bot.wechat.channel import WeChatChannel
    from bot.wecom.channel import WeComChannel

log = logging.getLogger(__name__)

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
    roles: tuple[str, ...] = ("web", "sender", "sweeper")
    wechat: WeChatChannel | None = None  # the Official Account, when configured
    wecom: WeComChannel | None = None  # the WeCom app, when configured
    wakers: list[Callable[[], Any]] = field(default_factory=list)


async def serve(
    app: App, stop: asyncio.Event, on_ready: Callable[[Running], None] | None = None
) -> None:
    """Run this process's roles until `stop` is set; on the way out, flush what was committed.

    web: the HTTP server (web chat, dashboard, Telegram webhook, WeChat callbacks) and Telegram
    long polling; sender: the outbox deliverers; sweeper: the periodic sweep and digests. The
    web chat's delivery runs with web or sender: it is safe in every process (one transaction
    per row) and a web process delivers its own chats' answers at once."""
    settings = app.settings
    roles = tuple(settings.process.roles)
    web_role, sender_role = "web" in roles, "sender" in roles
    # Behind a reverse proxy the process may listen on loopback yet serve the public: a
    # configured public_url means "not a local demo" (no role picker, dashboard login).
    demo = is_loopback(settings.web.host) and settings.web.public_url is None
    login = not demo or login_required(settings.web, await dashboard_users_exist(app))
    web_app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    webchat = setup_webchat(web_app, app, demo=demo)
    setup_dashboard(web_app, app, require_login=login)
    # Staff without Telegram or WeChat work their cards in the web chat, behind the same login.
    setup_staff_desk(web_app, webchat, require_login=login)
    web_app.router.add_get("/", _home("/chat" if demo else "/dashboard"))
    running = Running(
        url=_url(settings.web.host, settings.web.port), demo=demo, login=login, roles=roles
    )
    tasks: list[asyncio.Task[Any]] = []
    if (web_role or sender_role) and listens(app.engine):
        # Commits of other processes wake this one's streams and senders (storage/wakeups.py).
        tasks.append(asyncio.create_task(listen(app.engine, app.uow.wakeups), name="wakeups"))
    if web_role or sender_role:
        tasks.append(asyncio.create_task(webchat.run(), name="webchat"))
        running.wakers.append(webchat.wake)

    telegram: TelegramService | None = None
    if settings.telegram.token is not None and (web_role or sender_role):
        # Imported here, not at the top: aiogram is loaded only by processes that use it.
        from bot.telegram.service import TelegramService

        telegram = TelegramService(app, settings.telegram.token.get_secret_value())
        if settings.telegram.mode == "webhook" and web_role:
            telegram.register_webhook(web_app)
        running.wakers.append(telegram.sender.wake)
        wake_on(app.uow.wakeups, "telegram", telegram.sender.wake)
        running.telegram = settings.telegram.mode

    wechat: WeChatChannel | None = None
    if settings.wechat.enabled and (web_role or sender_role):
        # Imported here too: wechatpy (and what it pulls in) only where WeChat is used.
        from bot.wechat.channel import WeChatChannel

        wechat = WeChatChannel(app)
        if web_role:
            wechat.register(web_app)
        running.wakers.append(wechat.sender.wake)
        wake_on(app.uow.wakeups, "wechat", wechat.sender.wake)
        running.wechat = wechat

    wecom: WeComChannel | None = None
    if settings.wecom.enabled and (web_role or sender_role):
        from bot.wecom.channel import WeComChannel

        wecom = WeComChannel(app)
        if web_role:
            wecom.register(web_app)
        running.wakers.append(wecom.sender.wake)
        wake_on(app.uow.wakeups, "wecom", wecom.sender.wake)
        running.wecom = wecom

    runner = web.AppRunner(web_app, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    scheduler = None
    try:
        if web_role:
            await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        if telegram is not None:
            await telegram.start(receive=web_role, send=sender_role)
        if wechat is not None and sender_role:
            # WeChat's leased work is its sender and the processing of stored callbacks.
            await wechat.start()
        if wecom is not None and sender_role:
            await wecom.start()  # the same for WeCom: its sender and its stored callbacks
        if "sweeper" in roles:
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
        if wechat is not None:
            await wechat.stop_receiving()
        if wecom is not None:
            await wecom.stop_receiving()
        await runner.cleanup()
        # What was committed goes out before we stop; the rest waits in the outbox. Each flush
        # is bounded: a slow network or a locked database must not keep Ctrl-C from working.
        if tasks:  # the web chat's delivery ran here
            await bounded(webchat.deliver_pending())
        for channel in (telegram, wechat, wecom):
            if channel is not None:  # only while we hold the lease
                await bounded(channel.sender.deliver_pending())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in (telegram, wechat, wecom):
            if channel is not None:
                await bounded(channel.close())


async def bounded(step: Awaitable[Any]) -> None:
    """One step of the shutdown: at most SHUTDOWN_SECONDS, and its failure stops no other.

    asyncio.timeout, never asyncio.wait_for, here and in every loop a shutdown cancels: on
    Python 3.11 wait_for runs what it waits for in a task of its own and, when that task ends
    just as the waiter is cancelled, returns its result and drops the cancellation. A sender
    cancelled as a wake-up arrived went on delivering forever, and `serve` never stopped."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(SHUTDOWN_SECONDS):
            await step


def wake_on(hub: Wakeups, channel: str, wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake` when a commit, here or in another process, wrote rows for `channel`
    (and when the listener is back, for what it may have missed); returns the undo."""
    wanted = {outbox_topic(channel), RESYNC}

    def on_topic(topic: str) -> None:
        if topic in wanted:
            wake()

    return hub.subscribe(on_topic)


async def serve_telegram(app: App, stop: asyncio.Event) -> None:
    """The whole process; kept under its old name for callers that only think of Telegram."""
    await serve(app, stop)


def _home(target: str) -> Callable[[web.Request], Any]:
    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return home


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"
