"""What the Official Account and the WeCom app share in `shuoshi run`: the callback route
(URL check, checked-stored-answered posts), the inbox processor, the sender and the lease that
keeps processing and sending to one process. Each channel (bot/wechat/channel.py,
bot/wecom/channel.py) builds its own parts and says what differs in a few hooks.

Both wait 5 seconds for an answer and retry, so a callback is only checked (signature, AES),
stored in the inbox and answered at once; the inbox processor runs it through the
conversations afterwards, and a retry of a stored message is stored once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, ClassVar, Protocol

from aiohttp import web

from bot.app import App
from bot.inbox import InboxProcessor
from bot.lease import Lease, LeasedWork
from bot.wechat.callback import MAX_BODY_BYTES, Callback, CallbackMessage, Refused
from bot.wechat.delivery import QueueSender
from handlers.conversation import Conversations
from handlers.messages import Incoming
from storage.inbox import SqlInbox

log = logging.getLogger(__name__)


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


class Builder(Protocol):
    async def build(self, payload: dict[str, Any]) -> Incoming | None: ...


class Api(Protocol):
    async def close(self) -> None: ...


class HostedChannel:
    """A callback channel hosted by `shuoshi run`; subclasses build the parts and call wire()."""

    NAME: ClassVar[str]  # in log lines and task names
    PATH: ClassVar[str]
    ANSWER: ClassVar[str]  # the body that answers a stored callback

    app: App
    callback: Callback
    inbox: SqlInbox
    builder: Builder
    conversations: Conversations
    sender: QueueSender
    api: Api

    def wire(self, lease: Lease) -> None:
        """The processor, the lease and the work only its holder does."""
        self.processor = InboxProcessor(self.inbox, self.app.clock, self.handle)
        self.lease = lease
        self.sender.may_send = lease.valid
        self.leased = LeasedWork(lease, self._leased_tasks)
        self.keeper: asyncio.Task[None] | None = None

    # Hooks -----------------------------------------------------------------------------------

    def refusal(self, message: CallbackMessage) -> str | None:
        """Why a well-signed callback is still not ours (None: it is)."""
        return None

    async def received(self, message: CallbackMessage, now: datetime) -> None:
        """After a new callback was stored (not a retry)."""

    async def after_turn(self, incoming: Incoming) -> None:
        """After a stored callback went through the conversations."""

    # The callback route ----------------------------------------------------------------------

    def register(self, web_app: web.Application) -> None:
        web_app.router.add_get(self.PATH, self.verify_url)
        web_app.router.add_post(self.PATH, self.receive)

    async def verify_url(self, request: web.Request) -> web.StreamResponse:
        try:
            echo = self.callback.verify_url(dict(request.query))
        except Refused as refused:
            log.info("%s URL check refused: %s", self.NAME, refused.reason)
            return web.Response(status=refused.status, text="refused")
        return web.Response(text=echo)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """Checked, stored, answered: handled later from the inbox."""
        body = await read_capped(request)
        if body is None:
            return web.Response(status=413, text="refused")
        try:
            message = self.callback.open(dict(request.query), body)
        except Refused as refused:
            log.info("%s callback refused: %s", self.NAME, refused.reason)
            return web.Response(status=refused.status, text="refused")
        reason = self.refusal(message)
        if reason is not None:
            log.info("%s callback refused: %s", self.NAME, reason)
            return web.Response(status=403, text="refused")
        now = self.app.clock.now()
        payload = {**message.payload, "key": message.key}
        stored = await self.inbox.store([(message.order, message.openid, payload)], now)
        if stored:
            await self.received(message, now)
            self.processor.wake()
        else:
            log.info("%s callback %s was stored before (a retry); ignored", self.NAME, message.key)
        return web.Response(text=self.ANSWER)

    # Processing and sending ------------------------------------------------------------------

    async def handle(self, payload: dict[str, Any]) -> None:
        """One stored callback through the conversations (the inbox processor calls this)."""
        incoming = await self.builder.build(payload)
        if incoming is None:
            return
        await self.conversations.handle(incoming)
        await self.after_turn(incoming)
        self.sender.wake()

    def _leased_tasks(self) -> list[asyncio.Task[Any]]:
        name = self.NAME.lower()
        return [
            asyncio.create_task(self.sender.run(), name=f"{name}-sender"),
            asyncio.create_task(self.processor.run(), name=f"{name}-inbox"),
        ]

    async def start(self) -> None:
        self.keeper = asyncio.create_task(self.leased.run(), name=f"{self.NAME.lower()}-lease")

    async def stop_receiving(self) -> None:
        if self.keeper is not None:
            self.keeper.cancel()
            await asyncio.gather(self.keeper, return_exceptions=True)
            self.keeper = None

    async def close(self) -> None:
        await self.lease.release()
        await self.api.close()
