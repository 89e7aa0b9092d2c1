"""The API side: aiohttp on loopback, enforcing what WeChat enforces.

- access tokens expire (`expires_in`, on the given clock); an unknown token is 40001, an
  expired one 42001;
- customer-service messages reach a follower only within 48 hours of their last message
  (45015); to someone who never followed: 40003;
- an API quota: after `quota` calls, 45009 until `reset_quota()`;
- template messages need a known template id (40037); a category template's typed field
  (thing1, character_string2, ...) over its length, or with a line break, is 47003, as
  WeChat's "argument invalid! data.thing1.value"; media ids are kept for media/get.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from tests.fake_wechat.api import FakeApi, Handler

APP_ID = "wxfake0123456789"
APP_SECRET = "fake-app-secret"
WINDOW = timedelta(hours=48)
# The typed fields of category templates (类目模板) and the most characters each takes, as
# WeChat's documentation of template and subscription messages gives them.
TYPED_FIELDS = {"thing": 20, "character_string": 32, "number": 32, "letter": 32, "symbol": 5,
                "phone_number": 17, "car_number": 8, "name": 10, "phrase": 5, "time": 32,
                "date": 32}  # fmt: skip
_TYPED = re.compile(r"([a-z_]+?)[0-9]+")


class FakeWeChat(FakeApi):
    BAD_TOKEN = (40001, "invalid credential, access_token is invalid")
    QUOTA_SPENT = "reach max api daily quota limit"

    def __init__(self, now: Callable[[], datetime], *, token_seconds: int = 7200) -> None:
        super().__init__(now, token_seconds=token_seconds)
        self.last_message: dict[str, datetime] = {}  # openid -> when they last wrote
        self.followers: set[str] = set()
        self.custom: list[dict[str, Any]] = []  # customer-service messages delivered
        self.templates: list[dict[str, Any]] = []
        self.template_ids = {"TPL-RESULT", "TPL-RATING"}
        self.menu: dict[str, Any] | None = None
        self.qr_scenes: dict[str, str] = {}  # ticket -> scene string

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/cgi-bin/token", self._token),
            ("POST", "/cgi-bin/message/custom/send", self._custom),
            ("POST", "/cgi-bin/message/template/send", self._template),
            ("POST", "/cgi-bin/media/upload", self._upload),
            ("GET", "/cgi-bin/media/get", self._media_get),
            ("POST", "/cgi-bin/menu/create", self._menu),
            ("POST", "/cgi-bin/qrcode/create", self._qrcode),
        ]

    # Test side -------------------------------------------------------------------------------

    def wrote(self, openid: str) -> None:
        """The follower sent something now (the callbacks helper calls this)."""
        self.followers.add(openid)
        self.last_message[openid] = self.now()

    def to(self, openid: str) -> list[dict[str, Any]]:
        return [m for m in self.custom if m["touser"] == openid]

    def texts(self, openid: str) -> list[str]:
        """Each delivered text, menu head (with its options) as WeChat would show them."""
        shown = []
        for m in self.to(openid):
            if m["msgtype"] == "text":
                shown.append(m["text"]["content"])
            elif m["msgtype"] == "msgmenu":
                menu = m["msgmenu"]
                options = "\n".join(o["content"] for o in menu["list"])
                shown.append(f"{menu['head_content']}\n{options}")
        return shown

    # API side --------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("appid") != APP_ID or q.get("secret") != APP_SECRET:
            return self._error(40013, "invalid appid")
        token = self._new_token("TOKEN-")
        return web.json_response({"access_token": token, "expires_in": self.token_seconds})

    async def _custom(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        openid = body.get("touser", "")
        if openid not in self.followers:
            return self._error(40003, "invalid openid")
        last = self.last_message.get(openid)
        if last is None or self.now() - last >= WINDOW:
            return self._error(45015, "response out of time limit or subscription is canceled")
        if body.get("msgtype") == "image" and body["image"]["media_id"] not in self.uploads:
            return self._error(40007, "invalid media_id")
        self.custom.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        if body.get("template_id") not in self.template_ids:
            return self._error(40037, "invalid template_id")
        if body.get("touser") not in self.followers:
            return self._error(40003, "invalid openid")
        for key, field in body.get("data", {}).items():
            typed = _TYPED.fullmatch(key)
            limit = TYPED_FIELDS.get(typed.group(1), 0) if typed else 0
            value = str(field.get("value", ""))
            if limit and (len(value) > limit or "\n" in value):
                return self._error(47003, f"argument invalid! data.{key}.value invalid")
        self.templates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    async def _upload(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        media_id = await self._stored_upload(request, "UP-")
        return web.json_response({"type": "image", "media_id": media_id, "created_at": 0})

    async def _menu(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        if not 1 <= len(body.get("button", [])) <= 3:
            return self._error(40017, "invalid button size")
        self.menu = body
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _qrcode(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        body = json.loads(await request.read())
        scene = body.get("action_info", {}).get("scene", {}).get("scene_str", "")
        if body.get("action_name") != "QR_LIMIT_STR_SCENE" or not 1 <= len(scene) <= 64:
            return self._error(40053, "invalid action info")
        ticket = f"gQ+{scene}/=="  # needs quoting in a URL, as WeChat's tickets do
        self.qr_scenes[ticket] = scene
        return web.json_response({"ticket": ticket, "expire_seconds": 0,
                                  "url": f"http://weixin.qq.com/q/{scene}"})  # fmt: skip
