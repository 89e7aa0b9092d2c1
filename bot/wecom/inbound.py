"""A stored WeCom callback -> the channel-neutral `Incoming`, and the routes of the app.

Members act on cards: a button press arrives as `template_card_event` (EventKey = the button's
key, which is the callback data the handlers gave it; TaskId = the card) and becomes that
press; its ResponseCode, which lets us update the card once, is kept first. Reasons, notes
and results are typed, photos sent as images (fetched by MediaId with media/get). A number
typed when the newest card listed more choices than it had buttons picks that choice.

Only people of the organisation file are served here (their `wecom_userid`): anyone else gets
one clear answer saying so, and WeCom is no intake channel for residents or grid workers.
"""

from __future__ import annotations

import re
from typing import Any

from bot.wechat.inbound import other_message
from handlers.conversation import Route, Turn
from handlers.messages import PRIVATE, Incoming, Outgoing
from handlers.render import Renderer
from handlers.resident import route_cancel, route_unsupported
from handlers.staff import route_card_buttons, route_staff_input
from storage.wechat import WeChatStore
from storage.wecom import CHANNEL, WeComStore
from workflow.clock import Clock

TEMPLATE = "wecom.j2"
CARD_EVENT = "template_card_event"
NUMBER = re.compile(r"[0-9]{1,2}")
UNSUPPORTED = {"voice": "voice", "video": "video", "file": "document", "link": "document"}


class IncomingBuilder:
    """Turns one stored callback into an `Incoming`, or None for events nobody answers."""

    def __init__(self, store: WeChatStore, cards: WeComStore, clock: Clock) -> None:
        self.store = store
        self.cards = cards
        self.clock = clock

    async def build(self, payload: dict[str, Any]) -> Incoming | None:
        userid = str(payload.get("FromUserName", ""))
        kind = str(payload.get("MsgType", "")).lower()
        key = str(payload.get("key") or "")
        base: dict[str, Any] = {
            "channel": CHANNEL, "chat_id": userid, "chat_type": PRIVATE, "user_id": userid,
            "update_key": f"wc:{key}"[:128], "message_id": str(payload.get("MsgId") or key),
        }  # fmt: skip
        if kind == "event":
            return await self._event(userid, payload, base)
        if kind == "text":
            text = str(payload.get("Content") or "").strip()
            if NUMBER.fullmatch(text):
                options = await self.store.offered(userid)
                if len(options) > 6 and 1 <= int(text) <= len(options):
                    data = options[int(text) - 1]["data"]
                    return Incoming(**base, callback_data=data, callback_id=base["update_key"])
            return Incoming(**base, text=text)
        return other_message(kind, payload, base, UNSUPPORTED)

    async def _event(
        self, userid: str, payload: dict[str, Any], base: dict[str, Any]
    ) -> Incoming | None:
        """A card's button is its press; entering the app, reports of sent messages and the
        like need no answer."""
        if str(payload.get("Event", "")) != CARD_EVENT:
            return None
        task_id = str(payload.get("TaskId") or "")
        code = str(payload.get("ResponseCode") or "")
        if task_id and code:  # the card can be updated once more, whatever the press does
            await self.cards.card_code(task_id, userid, code, self.clock.now())
        data = str(payload.get("EventKey") or "")
        return Incoming(**base, callback_data=data, callback_id=base["update_key"])


async def route_unknown_member(turn: Turn) -> bool:
    """A WeCom member the county file does not name: told so, with their userid to pass on."""
    if turn.person is not None:
        return False
    r = Renderer(turn.r.locale)
    text = r.macro(TEMPLATE, "unknown_member", userid=turn.msg.user_id)
    turn.out.append(Outgoing(chat_id=turn.msg.chat_id, text=text))
    return True


async def route_staff_help(turn: Turn) -> bool:
    """Whatever no route took: what this app is for (a stale press is called stale)."""
    if turn.msg.callback_data:
        turn.reply("stale_button")
        return True
    text = Renderer(turn.r.locale).macro(TEMPLATE, "staff_help")
    turn.out.append(Outgoing(chat_id=turn.msg.chat_id, text=text))
    return True


# Staff only: no resident dialogue, no group intake; the card buttons and what they ask for.
WECOM_ROUTES: list[Route] = [
    route_unknown_member,
    route_unsupported,
    route_cancel,
    route_card_buttons,
    route_staff_input,
    route_staff_help,
]
