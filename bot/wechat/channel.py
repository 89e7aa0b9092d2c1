"""The WeChat Official Account in `shuoshi run`: the callback route, the inbox processor, the
sender, and the lease that keeps processing and sending to one process.

WeChat waits 5 seconds for an answer and retries three times, so a callback is only checked
(signature, AES), stored in the inbox (channel "wechat") and answered `success`; the inbox
processor runs it through the conversations afterwards. A retry of a stored message (same
MsgId, or same sender and time for events) is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.app import App
from bot.inbox import InboxProcessor
from bot.lease import Lease, LeasedWork
from bot.wechat.api import OfficialAccountApi
from bot.wechat.callback import MAX_BODY_BYTES, Callback, Refused
from bot.wechat.inbound import CHANNEL, IncomingBuilder, WeChatPhotos
from bot.wechat.sender import Retry, WeChatSender
from handlers.conversation import Conversations
from handlers.routes import ALL_ROUTES
from storage.inbox import SqlInbox
from storage.wechat import WeChatStore

log = logging.getLogger(__name__)

PATH = "/wechat/mp"


async def read_capped(request: web.Request) -> bytes | None:
    """A callback's body, or None when it is larger than any of WeChat's or WeCom's."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):  # one read may be a part only
        body += chunk
        if len(body) > MAX_BODY_BYTES:  # a chunked body says no length in advance
            return None
    return bytes(body)


class WeChatChannel:
    """Everything of the Official Account; built only when `wechat.app_id` is set."""

    def __init__(self, app: App) -> None:
        settings, outbox = app.settings.wechat, app.settings.outbox
        if not settings.app_id or settings.token is None or settings.app_secret is None:
            raise RuntimeError("the WeChat channel needs wechat.app_id, app_secret and token")
        self.app = app
        aes = settings.encoding_aes_key
        self.callback = Callback.official_account(
            settings.token.get_secret_value(), aes.get_secret_value() if aes else None,
            settings.app_id,
        )  # fmt: skip
        self.store = WeChatStore(app.sessions, f"mp:{settings.app_id}", CHANNEL)
        self.api = OfficialAccountApi(
            settings.api_base, settings.app_id, settings.app_secret.get_secret_value(),
            self.store, app.clock,
        )  # fmt: skip
        self.inbox = SqlInbox(app.sessions, CHANNEL)
        self.builder = IncomingBuilder(self.store, app.settings.locale)
        self.conversations = Conversations(
            app.uow, app.workflow, WeChatPhotos(self.api, app.media), ALL_ROUTES,
            default_locale=app.settings.locale,
        )  # fmt: skip
        self.sender = WeChatSender(
            self.api, self.store, app.sessions, app.media, app.clock, settings,
            public_url=app.settings.web.public_url, locale=app.settings.locale,
            retry=Retry(outbox.max_attempts, outbox.backoff_base_seconds,
                        outbox.backoff_cap_seconds),
        )  # fmt: skip
        self.processor = InboxProcessor(self.inbox, app.clock, self.handle)
        self.lease = Lease(app.sessions, app.clock, f"wechat:{settings.app_id}"[:64])
        self.sender.may_send = self.lease.valid
        self.leased = LeasedWork(self.lease, self._leased_tasks)
        self.keeper: asyncio.Task[None] | None = None
        self._web_chats: set[str] = set()  # followers known to have their web chat

    # The callback route ----------------------------------------------------------------------

    def register(self, web_app: web.Application) -> None:
        web_app.router.add_get(PATH, self.verify_url)
        web_app.router.add_post(PATH, self.receive)

    async def verify_url(self, request: web.Request) -> web.StreamResponse:
        try:
            echo = self.callback.verify_url(dict(request.query))
        except Refused as refused:
            log.info("WeChat URL check refused: %s", refused.reason)
            return web.Response(status=refused.status, text="refused")
        return web.Response(text=echo)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """Checked, stored, `success`: handled later from the inbox (WeChat waits 5 s)."""
        body = await read_capped(request)
        if body is None:
            return web.Response(status=413, text="refused")
        try:
            message = self.callback.open(dict(request.query), body)
        except Refused as refused:
            log.info("WeChat callback refused: %s", refused.reason)
            return web.Response(status=refused.status, text="refused")
        now = self.app.clock.now()
        payload = {**message.payload, "key": message.key}
        stored = await self.inbox.store([(message.order, message.openid, payload)], now)
        if stored:
            # The 48-hour window of customer-service messages opens again now.
            await self.store.touch(message.openid, now)
            self.processor.wake()
        else:
            log.info("WeChat callback %s was stored before (a retry); ignored", message.key)
        return web.Response(text="success")

    # Processing and sending ------------------------------------------------------------------

    async def handle(self, payload: dict[str, Any]) -> None:
        """One stored callback through the conversations (the inbox processor calls this)."""
        incoming = await self.builder.build(payload)
        if incoming is None:
            return
        await self.conversations.handle(incoming)
        # Their cases' template messages link to a web chat of the same person: make it now,
        # so the news and rating requests that follow are in its history too.
        if incoming.user_id not in self._web_chats:
            now = self.app.clock.now()
            if await self.store.web_chat_of(incoming.user_id, now, create=True) is not None:
                if len(self._web_chats) > 100_000:
                    self._web_chats.clear()  # a cache: asking the database again is correct
                self._web_chats.add(incoming.user_id)
        self.sender.wake()

    def _leased_tasks(self) -> list[asyncio.Task[Any]]:
        return [
            asyncio.create_task(self.sender.run(), name="wechat-sender"),
            asyncio.create_task(self.processor.run(), name="wechat-inbox"),
        ]

    async def start(self) -> None:
        self.keeper = asyncio.create_task(self.leased.run(), name="wechat-lease")
        log.info("WeChat Official Account %s: callbacks at %s", self.app.settings.wechat.app_id,
                 PATH)  # fmt: skip
        for line in self.startup_warnings():
            log.warning("%s", line)

    def startup_warnings(self) -> list[str]:
        """What works only halfway with these settings, said once when `shuoshi run` starts
        (the settings are valid: a county may start before it has its templates)."""
        settings = self.app.settings.wechat
        if not (settings.result_template_id or settings.rating_template_id):
            return [
                "WeChat: no wechat.result_template_id or rating_template_id: news for a "
                'resident who has not written for 48 hours fails (README "WeChat")'
            ]
        if self.sender.public_url is None:
            return [
                "WeChat: web.public_url is not set: template messages carry no link, so a "
                "resident outside the 48-hour window cannot open the case, see its result "
                'photos or rate it (README "WeChat")'
            ]
        return []

    async def stop_receiving(self) -> None:
        if self.keeper is not None:
            self.keeper.cancel()
            await asyncio.gather(self.keeper, return_exceptions=True)
            self.keeper = None

    async def close(self) -> None:
        await self.lease.release()
        await self.api.close()
