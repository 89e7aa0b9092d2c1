"""A stored WeChat callback -> the channel-neutral `Incoming` the conversations take.

WeChat has no inline buttons and no reply keyboard: a resident's choices arrive as a clicked
customer-service menu option (`bizmsgmenuid`, naming the outbox row that offered it and the
option's place), as a typed number (the option of that place in the latest message that
offered any), as a click on the account's own menu, or as the follow/scan event of a grid's
QR code. Each becomes what a Telegram resident's tap or command would have been.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from bot.wechat.client import WeChatError
from handlers.messages import PRIVATE, Incoming, Location, PhotoRef
from handlers.render import Renderer
from storage.media import MediaRefused, MediaStore, StoredPhoto
from storage.wechat import WeChatStore

log = logging.getLogger(__name__)

CHANNEL = "wechat"
# The account menu's click keys (README "WeChat"): what a resident's menu tap stands for.
MENU_COMMANDS = {"report": "/report", "my": "/my", "sos": "/sos"}
# A menu option's id is <outbox row id> * OPTION_BASE + <its place among the message's options>.
OPTION_BASE = 100
# Data no flow takes: the handlers answer "this button has expired".
STALE_PRESS = "stale"
NUMBER = re.compile(r"[0-9]{1,2}")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,19}[0-9]")
# What WeChat cannot bring in here, as the kinds the handlers' refusal names.
UNSUPPORTED = {"voice": "voice", "video": "video", "shortvideo": "video", "file": "document",
               "link": "document", "miniprogrampage": "document"}  # fmt: skip


def other_message(
    kind: str, payload: dict[str, Any], base: dict[str, Any], unsupported: dict[str, str]
) -> Incoming:
    """A photo, a location, or what the channel cannot take (named as the reply will name it):
    the same in the Official Account and in WeCom."""
    if kind == "image" and payload.get("MediaId"):
        return Incoming(**base, photos=(PhotoRef(str(payload["MediaId"])),))
    if kind == "location":
        try:
            where = Location(float(payload["Location_X"]), float(payload["Location_Y"]))
        except (KeyError, TypeError, ValueError):
            return Incoming(**base, unsupported="location")
        return Incoming(**base, location=where)
    return Incoming(**base, unsupported=unsupported.get(kind, kind or "message"))


def option_id(row_id: int, index: int) -> str:
    return str(row_id * OPTION_BASE + index)


class MediaSource(Protocol):
    """An API that hands out a sent image's bytes by its MediaId (Official Account, WeCom)."""

    async def get_media(self, media_id: str) -> bytes: ...


class WeChatPhotos:
    """Fetches an image by its MediaId into the media store (a PhotoFetcher); the WeCom app's
    members' photos come the same way.

    The download and Pillow happen before the turn's transaction opens (handlers/conversation.py
    _fetch_ahead): inside it SQLite's writer would wait for WeChat's answer, and a token renewed
    on the way (saved in a session of its own) would wait for the turn's own write lock."""

    def __init__(self, api: MediaSource, media: MediaStore) -> None:
        self.api = api
        self.media = media

    async def save(self, uow: Any, channel: str, ref: PhotoRef) -> int:
        return await self.save_fetched(uow, await self.fetch(channel, ref))

    async def fetch(self, channel: str, ref: PhotoRef) -> StoredPhoto:
        try:
            data = await self.api.get_media(ref.file_id)
        except WeChatError as exc:
            # An expired or unknown MediaId (kept 3 days by WeChat): say so, keep the draft.
            raise MediaRefused("not_an_image", str(exc), reason="damaged") from exc
        return await self.media.store_photo(data, channel=channel, channel_file_id=ref.file_id)

    async def save_fetched(self, uow: Any, fetched: StoredPhoto) -> int:
        row = await self.media.add_photo_row(uow.session, fetched, now=uow.clock.now())
        return row.id


class IncomingBuilder:
    """Turns one stored callback into an `Incoming`, or None for events nobody answers."""

    def __init__(self, store: WeChatStore, locale: str = "zh_CN") -> None:
        self.store = store
        self.r = Renderer(locale)

    async def build(self, payload: dict[str, Any]) -> Incoming | None:
        openid = str(payload.get("FromUserName", ""))
        kind = str(payload.get("MsgType", "")).lower()
        key = str(payload.get("key") or "")
        base: dict[str, Any] = {
            "channel": CHANNEL, "chat_id": openid, "chat_type": PRIVATE, "user_id": openid,
            "update_key": f"wx:{key}"[:128], "message_id": str(payload.get("MsgId") or key),
            # WeChat tells an account no follower's name: the name staff see on the reporter
            # (as registered) tells two followers apart by their openid's end.
            "user_name": self.r.macro("wechat.j2", "resident_name", tail=openid[-4:]),
        }  # fmt: skip
        if kind == "event":
            text = _event_text(payload)
            return None if text is None else Incoming(**base, text=text)
        if kind == "text":
            return await self._text(openid, payload, base)
        return other_message(kind, payload, base, UNSUPPORTED)

    async def _text(self, openid: str, payload: dict[str, Any], base: dict[str, Any]) -> Incoming:
        text = str(payload.get("Content") or "").strip()
        menu_id = str(payload.get("bizmsgmenuid") or "")
        if menu_id.isdigit():
            row_id, index = divmod(int(menu_id), OPTION_BASE)
            options = await self.store.offered(openid, row_id)
            data = options[index]["data"] if index < len(options) else STALE_PRESS
            return Incoming(**base, callback_data=data, callback_id=base["update_key"])
        if NUMBER.fullmatch(text):
            options = await self.store.offered(openid)
            if 1 <= int(text) <= len(options):
                data = options[int(text) - 1]["data"]
                return Incoming(**base, callback_data=data, callback_id=base["update_key"])
        if PHONE.fullmatch(text):
            # WeChat cannot share a contact: a number typed when the phone is asked for is one.
            options = await self.store.offered(openid)
            if any(str(o.get("data", "")).startswith("ct:") for o in options):
                return Incoming(**base, contact_phone=re.sub(r"[ -]", "", text))
        return Incoming(**base, text=text)


def _event_text(payload: dict[str, Any]) -> str | None:
    """Following (through a grid's QR code or not) is /start; menu clicks are the resident
    commands. Other events (unfollow, menu links, template receipts) need no answer."""
    event = str(payload.get("Event", "")).lower()
    key = str(payload.get("EventKey") or "").strip()
    if event == "subscribe":
        return "/start"
    if event in ("subscribe_scan", "scan"):
        return f"/start {key}" if key else "/start"
    if event == "click":
        return MENU_COMMANDS.get(key.lower())
    return None
