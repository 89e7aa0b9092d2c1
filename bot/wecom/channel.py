"""The WeCom app in `shuoshi run`: the callback route, the inbox processor, the sender, and
the lease that keeps processing and sending to one process.

As for the Official Account (`bot/wechat/channel.py`): WeCom waits 5 seconds and retries, so a
callback is only checked (msg_signature, AES with the corp id inside), stored in the inbox
(channel "wecom") and answered at once with an empty body; the inbox processor runs it through
the staff conversations afterwards. A retry (same MsgId, or for events the same member, time,
button and card) is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.app import App
from bot.inbox import InboxProcessor
from bot.lease import Lease, LeasedWork
from bot.wechat.callback import Callback, Refused
from bot.wechat.channel import read_capped
from bot.wechat.delivery import Retry
from bot.wechat.inbound import WeChatPhotos
from bot.wecom.api import WeComApi
from bot.wecom.inbound import WECOM_ROUTES, IncomingBuilder
from bot.wecom.sender import WeComSender
from handlers.conversation import Conversations
from storage.inbox import SqlInbox
from storage.wechat import WeChatStore
from storage.wecom import CHANNEL, WeComStore

log = logging.getLogger(__name__)

PATH = "/wecom/callback"


class WeComChannel:
    """Everything of the WeCom app; built only when `wecom.corp_id` is set."""

    def __init__(self, app: App) -> None:
        settings, outbox = app.settings.wecom, app.settings.outbox
        if (
            not settings.corp_id or settings.agent_id is None or settings.secret is None
            or settings.token is None or settings.encoding_aes_key is None
        ):  # fmt: skip
            raise RuntimeError("the WeCom channel needs wecom.corp_id, agent_id, secret, "
                               "token and encoding_aes_key")  # fmt: skip
        self.app = app
        self.callback = Callback.wecom(
            settings.token.get_secret_value(), settings.encoding_aes_key.get_secret_value(),
            settings.corp_id,
        )  # fmt: skip
        self.store = WeChatStore(app.sessions, settings.account, CHANNEL)
        self.cards = WeComStore(app.sessions, settings.account)
        self.api = WeComApi(
            settings.api_base, settings.corp_id, settings.agent_id,
            settings.secret.get_secret_value(), self.store, app.clock,
        )  # fmt: skip
        self.inbox = SqlInbox(app.sessions, CHANNEL)
        self.builder = IncomingBuilder(self.store, self.cards, app.clock)
        self.conversations = Conversations(
            app.uow, app.workflow, WeChatPhotos(self.api, app.media), WECOM_ROUTES,
            default_locale=app.settings.locale,
        )  # fmt: skip
        self.sender = WeComSender(
            self.api, self.store, self.cards, app.sessions, app.media, app.clock,
            locale=app.settings.locale,
            retry=Retry(outbox.max_attempts, outbox.backoff_base_seconds,
                        outbox.backoff_cap_seconds),
        )  # fmt: skip
        self.processor = InboxProcessor(self.inbox, app.clock, self.handle)
        self.lease = Lease(app.sessions, app.clock, settings.account[:64])
        self.sender.may_send = self.lease.valid
        self.leased = LeasedWork(self.lease, self._leased_tasks)
        self.keeper: asyncio.Task[None] | None = None

    # The callback route ----------------------------------------------------------------------

    def register(self, web_app: web.Application) -> None:
        web_app.router.add_get(PATH, self.verify_url)
        web_app.router.add_post(PATH, self.receive)

    async def verify_url(self, request: web.Request) -> web.StreamResponse:
        try:
            echo = self.callback.verify_url(dict(request.query))
        except Refused as refused:
            log.info("WeCom URL check refused: %s", refused.reason)
            return web.Response(status=refused.status, text="refused")
        return web.Response(text=echo)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """Checked, stored, answered: handled later from the inbox (WeCom waits 5 s)."""
        body = await read_capped(request)
        if body is None:
            return web.Response(status=413, text="refused")
        try:
            message = self.callback.open(dict(request.query), body)
        except Refused as refused:
            log.info("WeCom callback refused: %s", refused.reason)
            return web.Response(status=refused.status, text="refused")
        agent = message.payload.get("AgentID")
        if agent and agent != str(self.app.settings.wecom.agent_id):
            log.info("WeCom callback for agent %s, not ours; refused", agent)
            return web.Response(status=403, text="refused")
        payload = {**message.payload, "key": message.key}
        stored = await self.inbox.store([(message.order, message.openid, payload)],
                                        self.app.clock.now())  # fmt: skip
        if stored:
            self.processor.wake()
        else:
            log.info("WeCom callback %s was stored before (a retry); ignored", message.key)
        return web.Response(text="")  # an empty answer: nothing to reply passively

    # Processing and sending ------------------------------------------------------------------

    async def handle(self, payload: dict[str, Any]) -> None:
        """One stored callback through the staff conversations (the inbox processor calls it)."""
        incoming = await self.builder.build(payload)
        if incoming is None:
            return
        await self.conversations.handle(incoming)
        self.sender.wake()

    def _leased_tasks(self) -> list[asyncio.Task[Any]]:
        return [
            asyncio.create_task(self.sender.run(), name="wecom-sender"),
            asyncio.create_task(self.processor.run(), name="wecom-inbox"),
        ]

    async def start(self) -> None:
        self.keeper = asyncio.create_task(self.leased.run(), name="wecom-lease")
        settings = self.app.settings.wecom
        log.info("WeCom app %s of %s: callbacks at %s", settings.agent_id, settings.corp_id,
                 PATH)  # fmt: skip

    async def stop_receiving(self) -> None:
        if self.keeper is not None:
            self.keeper.cancel()
            await asyncio.gather(self.keeper, return_exceptions=True)
            self.keeper = None

    async def close(self) -> None:
        await self.lease.release()
        await self.api.close()
