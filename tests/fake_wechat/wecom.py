"""A fake WeCom (企业微信) self-built app on loopback: the API the sender and `shuoshi wecom`
call, with WeCom's rules, and the encrypted callbacks WeCom posts to /wecom/callback.

- gettoken needs the corp id and the app's secret; tokens expire (`expires_in`, on the given
  clock): an unknown token is 40014, an expired one 42001;
- message/send reaches known members only (81013), checks the agent id (301002) and, for a
  template card, its type, task id (unique in the app), 1-6 buttons with keys of at most 1,024
  bytes, and answers the card's `response_code`;
- update_template_card spends a response code (once each, within 72 hours; the fake answers
  40078 for a spent, unknown or expired one);
- appchat/create needs 2-2000 known members and a new chat id (86215 when it exists);
  appchat/send a known chat (86003);
- limits: after `quota` calls, 45009 until `reset_quota()`; `busy` calls answered 45033.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from tests.fake_wechat.api import FakeApi, Handler
from tests.fake_wechat.callbacks import sign

CORP_ID = "wwfake0123456789"
AGENT_ID = 1000002
SECRET = "fake-wecom-secret"
TOKEN = "wecom-callback-token"
AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"
TASK_ID = re.compile(r"[A-Za-z0-9_@-]{1,128}")
CODE_LIFETIME = timedelta(hours=72)


class FakeWeCom(FakeApi):
    BAD_TOKEN = (40014, "invalid access_token")
    QUOTA_SPENT = "api freq out of limit"

    def __init__(self, now: Callable[[], datetime], members: set[str], *,
                 token_seconds: int = 7200) -> None:  # fmt: skip
        super().__init__(now, token_seconds=token_seconds)
        self.members = set(members)  # userids of the corp's address book
        self.sent: list[dict[str, Any]] = []  # message/send bodies delivered
        self.cards: dict[str, dict[str, Any]] = {}  # task id -> the card as the member sees it
        self.card_versions: dict[str, list[dict[str, Any]]] = {}  # every version of each card
        self.codes: dict[str, tuple[str, datetime]] = {}  # unused response code -> task, when
        self.appchats: dict[str, dict[str, Any]] = {}
        self.appchat_sent: list[dict[str, Any]] = []
        self.busy = 0
        self._arrived = asyncio.Event()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/cgi-bin/gettoken", self._token),
            ("POST", "/cgi-bin/message/send", self._send),
            ("POST", "/cgi-bin/message/update_template_card", self._update),
            ("POST", "/cgi-bin/appchat/create", self._appchat_create),
            ("POST", "/cgi-bin/appchat/send", self._appchat_send),
            ("POST", "/cgi-bin/media/upload", self._upload),
            ("GET", "/cgi-bin/media/get", self._media_get),
        ]

    # Test side -------------------------------------------------------------------------------

    async def wait_sent(
        self,
        userid: str,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - an upper bound, the wait ends on the send
    ) -> list[dict[str, Any]]:
        """The messages to `userid` once there are `count` (a real process sends them)."""
        async with asyncio.timeout(timeout):
            while len(self.to(userid)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.to(userid)

    def to(self, userid: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["touser"] == userid]

    def texts(self, userid: str) -> list[str]:
        """Each text, and each card as first sent (title and body), in order."""
        shown = []
        for m in self.to(userid):
            if m["msgtype"] == "text":
                shown.append(m["text"]["content"])
            elif m["msgtype"] == "template_card":
                card = m["template_card"]
                shown.append(f"{card['main_title']['title']}\n{card.get('sub_title_text', '')}")
        return shown

    def card_tasks(self, userid: str) -> list[str]:
        return [m["template_card"]["task_id"] for m in self.to(userid)
                if m["msgtype"] == "template_card"]  # fmt: skip

    def latest_card(self, userid: str) -> dict[str, Any]:
        """The newest card the member has, as it looks now (updates applied)."""
        return self.cards[self.card_tasks(userid)[-1]]

    def press_code(self, task_id: str) -> str:
        """The response code a press of the card brings (valid once, 72 hours)."""
        code = f"RC-{next(self._ids)}"
        self.codes[code] = (task_id, self.now())
        return code

    # API side --------------------------------------------------------------------------------

    def _limited(self) -> web.Response | None:
        if self.busy > 0:
            self.busy -= 1
            return self._error(45033, "api concurrent out of limit")
        return None

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("corpid") != CORP_ID or q.get("corpsecret") != SECRET:
            return self._error(40001, "invalid secret")
        token = self._new_token("WC-TOKEN-")
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token,
                                  "expires_in": self.token_seconds})  # fmt: skip

    def _card_error(self, card: dict[str, Any]) -> web.Response | None:
        if card.get("card_type") != "button_interaction":
            return self._error(40058, "card_type must be button_interaction here")
        if not card.get("main_title", {}).get("title"):
            return self._error(40058, "main_title.title is required")
        if not TASK_ID.fullmatch(str(card.get("task_id", ""))):
            return self._error(40058, "invalid task_id")
        buttons = card.get("button_list") or []
        if not 1 <= len(buttons) <= 6:
            return self._error(40058, "button_list needs 1-6 buttons")
        if any(len(str(b.get("key", "")).encode()) > 1024 or not b.get("text") for b in buttons):
            return self._error(40058, "a button needs a text and a key of at most 1024 bytes")
        return None

    async def _send(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        if body.get("agentid") != AGENT_ID:
            return self._error(301002, "not allow operate another agent with this accesstoken")
        if body.get("touser") not in self.members:
            return self._error(81013, "user & party & tag all invalid")
        kind = body.get("msgtype")
        if kind == "image" and body["image"]["media_id"] not in self.uploads:
            return self._error(40007, "invalid media_id")
        answer: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "msgid": f"M{next(self._ids)}"}
        if kind == "template_card":
            card = body["template_card"]
            if (refused := self._card_error(card)) is not None:
                return refused
            if card["task_id"] in self.cards:
                return self._error(40058, "task_id already exists")
            self.cards[card["task_id"]] = card
            self.card_versions[card["task_id"]] = [card]
            answer["response_code"] = self.press_code(card["task_id"])
        elif kind != "text" and kind != "image":
            return self._error(40008, "invalid message type")
        self.sent.append(body)
        self._arrived.set()
        return web.json_response(answer)

    async def _update(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        if body.get("agentid") != AGENT_ID:
            return self._error(301002, "not allow operate another agent with this accesstoken")
        code = body.get("response_code", "")
        task = self.codes.pop(code, None)
        if task is None or self.now() - task[1] >= CODE_LIFETIME:
            return self._error(40078, "invalid response_code (used, unknown or expired)")
        card = body.get("template_card") or {}
        if (refused := self._card_error(card)) is not None:
            return refused
        if card.get("task_id") != task[0]:
            return self._error(40058, "task_id is not the card's")
        self.cards[task[0]] = card
        self.card_versions[task[0]].append(card)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _appchat_create(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        users = body.get("userlist") or []
        if not 2 <= len(users) <= 2000 or any(u not in self.members for u in users):
            return self._error(40050, "invalid userlist")
        chatid = body.get("chatid") or f"chat{next(self._ids)}"
        if not re.fullmatch(r"[0-9A-Za-z]{1,32}", chatid):
            return self._error(86001, "invalid chatid")
        if chatid in self.appchats:
            return self._error(86215, "chatid already exists")
        self.appchats[chatid] = body
        return web.json_response({"errcode": 0, "errmsg": "ok", "chatid": chatid})

    async def _appchat_send(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        if body.get("chatid") not in self.appchats:
            return self._error(86003, "chat not found")
        if body.get("msgtype") not in ("text", "image", "textcard", "markdown"):
            return self._error(40008, "invalid message type for a group chat")
        self.appchat_sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _upload(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        media_id = await self._stored_upload(request, "WUP-")
        return web.json_response({"errcode": 0, "type": "image", "media_id": media_id})


@dataclass
class Posted:
    status: int
    text: str


class WeComCallbacks:
    """Posts members' messages and card presses to `url`, encrypted as WeCom does."""

    def __init__(self, fake: FakeWeCom, url: str, *, tick: Callable[[], object] | None = None,
                 token: str = TOKEN, aes_key: str = AES_KEY) -> None:  # fmt: skip
        self.fake = fake
        self.url = url
        self.tick = tick
        self.token = token
        self.crypto = WeComCrypto(token, aes_key, CORP_ID)
        self.session: aiohttp.ClientSession | None = None
        self._msg_ids = itertools.count(7_000_000_000_000_000_001)
        self._nonces = itertools.count(1)

    def xml(self, userid: str, fields: dict[str, Any], created: int | None = None) -> str:
        created = created if created is not None else int(self.fake.now().timestamp())
        base = {"ToUserName": CORP_ID, "FromUserName": userid, "CreateTime": created,
                **fields, "AgentID": AGENT_ID}  # fmt: skip
        body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" if isinstance(v, str) else
                       f"<{k}>{v}</{k}>" for k, v in base.items())  # fmt: skip
        return f"<xml>{body}</xml>"

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def post_xml(self, xml: str, *, bad: str | None = None) -> Posted:
        """Post `xml` as WeCom would; `bad` spoils one thing: "msg_signature", "body" (no
        AES of ours) or "corp" (encrypted for another corp id)."""
        timestamp, nonce = str(int(time.time())), f"n{next(self._nonces)}"
        crypto = WeComCrypto(self.token, AES_KEY, "wwsomeoneelse") if bad == "corp" else self.crypto
        data = crypto.encrypt_message(xml, nonce, timestamp)
        encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", data).group(1)  # type: ignore[union-attr]
        if bad == "body":
            spoiled = "QUFB" + encrypt[4:]
            data, encrypt = data.replace(encrypt, spoiled), spoiled
        signature = sign(self.token, timestamp, nonce, encrypt)
        if bad == "msg_signature":
            signature = sign("not-the-token", timestamp, nonce, encrypt)
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        async with self._session().post(self.url, params=query, data=data.encode()) as answer:
            return Posted(answer.status, await answer.text())

    async def verify_url(self, echo: str = "echo-4242", *, bad: bool = False) -> Posted:
        """WeCom's URL check: echostr encrypted, msg_signature over it."""
        timestamp, nonce = str(int(time.time())), f"n{next(self._nonces)}"
        data = self.crypto.encrypt_message(echo, nonce, timestamp)
        encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]>", data).group(1)  # type: ignore[union-attr]
        signature = sign("not-the-token" if bad else self.token, timestamp, nonce, encrypt)
        query = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce,
                 "echostr": encrypt}  # fmt: skip
        async with self._session().get(self.url, params=query) as answer:
            return Posted(answer.status, await answer.text())

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def send(self, userid: str, fields: dict[str, Any]) -> Posted:
        posted = await self.post_xml(self.xml(userid, fields))
        if self.tick is not None:
            self.tick()
        return posted

    def _msg(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"MsgType": kind, **fields, "MsgId": next(self._msg_ids)}

    async def text(self, userid: str, content: str) -> Posted:
        return await self.send(userid, self._msg("text", Content=escape(content)))

    async def image(self, userid: str, data: bytes) -> Posted:
        media_id = f"WMEDIA-{len(self.fake.user_media) + 1}"
        self.fake.user_media[media_id] = data
        return await self.send(userid, self._msg("image", PicUrl="http://x/p.jpg",
                                                 MediaId=media_id))  # fmt: skip

    async def other(self, userid: str, kind: str) -> Posted:
        """voice, video, file: what the app does not take."""
        return await self.send(userid, self._msg(kind, MediaId="WM-x", Format="amr"))

    def press_fields(self, task_id: str, key: str) -> dict[str, Any]:
        return {"MsgType": "event", "Event": "template_card_event", "EventKey": key,
                "TaskId": task_id, "CardType": "button_interaction",
                "ResponseCode": self.fake.press_code(task_id)}  # fmt: skip

    async def press(self, userid: str, label: str, *, card: dict[str, Any] | None = None) -> Posted:
        """Press the button whose text contains `label` on `card` (default: the member's
        newest card as it looks now)."""
        card = card if card is not None else self.fake.latest_card(userid)
        for button in card.get("button_list", []):
            if label in button["text"]:
                return await self.send(userid, self.press_fields(card["task_id"], button["key"]))
        raise AssertionError(f"no button {label!r} on card {card.get('task_id')}")
