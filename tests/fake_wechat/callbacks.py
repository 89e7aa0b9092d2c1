"""The callback side: what WeChat posts to /wechat/mp, signed and (in safe mode) encrypted
with wechatpy, as the account's server settings say."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from wechatpy.crypto import WeChatCrypto

from tests.fake_wechat.server import APP_ID, FakeWeChat

TOKEN = "callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass
class Posted:
    status: int
    text: str


def sign(token: str, *parts: str) -> str:
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


class Callbacks:
    """Posts followers' messages and events to `url` as WeChat does."""

    def __init__(self, fake: FakeWeChat, url: str, *, encrypted: bool = True,
                 token: str = TOKEN, aes_key: str = AES_KEY,
                 tick: Callable[[], object] | None = None) -> None:  # fmt: skip
        self.fake = fake
        # Called after each message: a person takes a second at least between two, and
        # WeChat's CreateTime is in whole seconds.
        self.tick = tick
        self.session: aiohttp.ClientSession | None = None
        self.url = url
        self.encrypted = encrypted
        self.token = token
        self.crypto = WeChatCrypto(token, aes_key, APP_ID)
        self._msg_ids = itertools.count(24_000_000_000_000_001)
        self._nonces = itertools.count(1)

    def xml(self, openid: str, fields: dict[str, Any], created: int | None = None) -> str:
        created = created if created is not None else int(self.fake.now().timestamp())
        base = {"ToUserName": "gh_fake", "FromUserName": openid, "CreateTime": created, **fields}
        body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" if isinstance(v, str) else
                       f"<{k}>{v}</{k}>" for k, v in base.items())  # fmt: skip
        return f"<xml>{body}</xml>"

    async def post_xml(self, xml: str, *, bad: str | None = None) -> Posted:
        """Post `xml` as WeChat would; `bad` spoils one thing: "signature", "msg_signature"
        (safe mode's) or "body" (an envelope that is no AES of ours)."""
        timestamp, nonce = str(int(time.time())), f"n{next(self._nonces)}"
        signature = sign(self.token, timestamp, nonce)
        query = {"timestamp": timestamp, "nonce": nonce, "signature": signature}
        if bad == "signature":
            query["signature"] = sign("not-the-token", timestamp, nonce)
        data = xml
        if self.encrypted:
            data = self.crypto.encrypt_message(xml, nonce, timestamp)
            encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", data).group(1)  # type: ignore[union-attr]
            if bad == "body":
                spoiled = "QUFB" + encrypt[4:]  # still base64, no longer our AES
                data, encrypt = data.replace(encrypt, spoiled), spoiled
            msg_signature = sign(self.token, timestamp, nonce, encrypt)
            if bad == "msg_signature":
                msg_signature = sign("not-the-token", timestamp, nonce, encrypt)
            query.update(encrypt_type="aes", openid="x", msg_signature=msg_signature)
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        async with self.session.post(self.url, params=query, data=data.encode()) as answer:
            return Posted(answer.status, await answer.text())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, openid: str, fields: dict[str, Any], created: int | None = None) -> Posted:
        posted = await self.post_xml(self.xml(openid, fields, created))
        if posted.status == 200:
            self.fake.wrote(openid)
        if self.tick is not None:
            self.tick()
        return posted

    # What a follower does ------------------------------------------------------------------

    async def follow(self, openid: str, scene: str | None = None) -> Posted:
        key = f"qrscene_{scene}" if scene else ""
        return await self.send(openid, {"MsgType": "event", "Event": "subscribe", "EventKey": key})

    async def scan(self, openid: str, scene: str) -> Posted:
        return await self.send(openid, {"MsgType": "event", "Event": "SCAN", "EventKey": scene})

    async def click(self, openid: str, key: str) -> Posted:
        return await self.send(openid, {"MsgType": "event", "Event": "CLICK", "EventKey": key})

    def _msg(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"MsgType": kind, **fields, "MsgId": next(self._msg_ids)}

    async def text(self, openid: str, content: str, *, menu_id: str | None = None) -> Posted:
        fields = self._msg("text", Content=escape(content))
        if menu_id is not None:
            fields["bizmsgmenuid"] = menu_id
        return await self.send(openid, fields)

    async def choose(self, openid: str, label: str) -> Posted:
        """Tap the option of the latest menu sent to `openid` whose text contains `label`."""
        for message in reversed(self.fake.to(openid)):
            if message["msgtype"] != "msgmenu":
                continue
            for option in message["msgmenu"]["list"]:
                if label in option["content"]:
                    return await self.text(openid, option["content"], menu_id=option["id"])
        raise AssertionError(f"no option {label!r} was offered to {openid}")

    async def image(self, openid: str, data: bytes) -> Posted:
        media_id = f"MEDIA-{len(self.fake.user_media) + 1}"
        self.fake.user_media[media_id] = data
        return await self.send(
            openid, self._msg("image", PicUrl="http://x/p.jpg", MediaId=media_id)
        )

    async def location(self, openid: str, lat: float, lon: float, label: str = "") -> Posted:
        return await self.send(openid, self._msg("location", Location_X=lat, Location_Y=lon,
                                                 Scale=15, Label=label))  # fmt: skip

    async def other(self, openid: str, kind: str) -> Posted:
        """voice, video, shortvideo, file: what the account cannot take."""
        return await self.send(openid, self._msg(kind, MediaId="M-x", Format="amr"))
