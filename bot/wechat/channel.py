"""The WeChat Official Account in `shuoshi run` (what it shares with WeCom: bot/wechat/hosted.py).

WeChat waits 5 seconds for an answer and retries three times, so a callback is only checked
(signature, AES), stored in the inbox (channel "wechat") and answered `success`; the inbox
processor runs it through the conversations afterwards. A retry of a stored message (same
MsgId, or same sender and time for events) is stored once. Each new callback reopens the
resident's 48-hour window of customer-service messages.
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.app import App
from bot.lease import Lease
from bot.wechat.api import OfficialAccountApi
from bot.wechat.callback import Callback, CallbackMessage
from bot.wechat.hosted import HostedChannel
from bot.wechat.inbound import CHANNEL, IncomingBuilder, WeChatPhotos
from bot.wechat.sender import Retry, WeChatSender
from handlers.conversation import Conversations
from handlers.messages import Incoming
from handlers.routes import ALL_ROUTES
from storage.inbox import SqlInbox
from storage.wechat import WeChatStore

log = logging.getLogger(__name__)

PATH = "/wechat/mp"


class WeChatChannel(HostedChannel):
    """Everything of the Official Account; built only when `wechat.app_id` is set."""

    NAME = "WeChat"
    PATH = PATH
    ANSWER = "success"
    sender: WeChatSender

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
        self.wire(Lease(app.sessions, app.clock, f"wechat:{settings.app_id}"[:64]))
        self._web_chats: set[str] = set()  # followers known to have their web chat

    async def received(self, message: CallbackMessage, now: datetime) -> None:
        # The 48-hour window of customer-service messages opens again now.
        await self.store.touch(message.openid, now)

    async def after_turn(self, incoming: Incoming) -> None:
        # Their cases' template messages link to a web chat of the same person: make it now,
        # so the news and rating requests that follow are in its history too.
        if incoming.user_id not in self._web_chats:
            now = self.app.clock.now()
            if await self.store.web_chat_of(incoming.user_id, now, create=True) is not None:
                if len(self._web_chats) > 100_000:
                    self._web_chats.clear()  # a cache: asking the database again is correct
                self._web_chats.add(incoming.user_id)

    async def start(self) -> None:
        await super().start()
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
