"""The WeCom app in `shuoshi run`: the callback route, the inbox processor, the sender, and
the lease that keeps processing and sending to one process.

As for the Official Account (`bot/wechat/channel.py`): WeCom waits 5 seconds and retries, so a
callback is only checked (msg_signature, AES with the corp id inside), stored in the inbox
(channel "wecom") and answered at once with an empty body; the inbox processor runs it through
the staff conversations afterwards. A retry (same MsgId, or for events the same member, time,
button and card) is stored once.
"""

from __future__ import annotations

import logging

from bot.app import App
from bot.lease import Lease
from bot.wechat.callback import Callback, CallbackMessage
from bot.wechat.delivery import Retry
from bot.wechat.hosted import HostedChannel
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


class WeComChannel(HostedChannel):
    """Everything of the WeCom app; built only when `wecom.corp_id` is set."""

    NAME = "WeCom"
    PATH = PATH
    ANSWER = ""  # an empty answer: nothing to reply passively
    sender: WeComSender

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
        self.wire(Lease(app.sessions, app.clock, settings.account[:64]))

    def refusal(self, message: CallbackMessage) -> str | None:
        agent = message.payload.get("AgentID")
        if agent and agent != str(self.app.settings.wecom.agent_id):
            return f"for agent {agent}, not ours"
        return None

    async def start(self) -> None:
        await super().start()
        settings = self.app.settings.wecom
        log.info("WeCom app %s of %s: callbacks at %s", settings.agent_id, settings.corp_id,
                 PATH)  # fmt: skip
