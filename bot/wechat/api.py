"""WeChat's HTTP API, async (aiohttp): the access token and the calls the sender makes.

The access token is shared by every process through the database (`storage/wechat.py`): WeChat
gives one account one valid token at a time, and a process asking for its own would end the
others'. A call WeChat answers with 40001/42001 (token invalid or expired) forgets that token,
fetches a new one and is made once more. Every other errcode is raised as `WeChatError` for
the caller to judge (the sender backs off on limits, fails what can never go).

The WeCom app's API has the same shape (a token from corp id + secret, errcode answers):
`AccessTokens` and `WeChatError` are meant for it too; only `fetch` and the paths differ.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp

from storage.wechat import WeChatStore
from workflow.clock import Clock

log = logging.getLogger(__name__)

# errcodes that mean "this token is no good": refresh once and retry.
TOKEN_REFUSED = frozenset({40001, 40014, 42001})
# A token is renewed this long before WeChat says it expires (its clock and ours differ).
TOKEN_MARGIN = timedelta(minutes=5)
TIMEOUT = aiohttp.ClientTimeout(total=20)  # each call; well inside a row's 30 s claim


class WeChatError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def _raise_for(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WeChatError(-2, "answer is not a JSON object")
    code = data.get("errcode") or 0
    if code:
        raise WeChatError(int(code), str(data.get("errmsg", "")))
    return data


Fetch = Callable[[], Awaitable[tuple[str, int]]]  # -> (token, seconds it lives)


class AccessTokens:
    """The valid token: this process's copy, else the database's, else a fresh one."""

    def __init__(self, store: WeChatStore, clock: Clock, fetch: Fetch) -> None:
        self.store = store
        self.clock = clock
        self.fetch = fetch
        self._token: str | None = None
        self._until = self.clock.now()

    async def get(self) -> str:
        now = self.clock.now()
        if self._token is not None and now < self._until:
            return self._token
        token = await self.store.token(now + TOKEN_MARGIN)
        if token is None:
            return await self._fresh()
        self._token, self._until = token, now + TOKEN_MARGIN  # look again in a while
        return token

    async def refused(self, token: str) -> str:
        """WeChat refused `token`: forget it everywhere and get another."""
        await self.store.forget_token(token)
        self._token = None
        return await self._fresh()

    async def _fresh(self) -> str:
        token, lives = await self.fetch()
        now = self.clock.now()
        expires = now + timedelta(seconds=max(lives, 0))
        await self.store.save_token(token, expires, now)
        self._token, self._until = token, expires - TOKEN_MARGIN
        log.info("WeChat: new access token for %s (valid %ss)", self.store.account, lives)
        return token


class OfficialAccountApi:
    """The calls of the Official Account the channel needs, each with the token retry."""

    def __init__(
        self, base: str, app_id: str, secret: str, store: WeChatStore, clock: Clock
    ) -> None:
        self.base = base.rstrip("/")
        self.app_id = app_id
        self._secret = secret
        self.tokens = AccessTokens(store, clock, self._fetch_token)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch_token(self) -> tuple[str, int]:
        params = {"grant_type": "client_credential", "appid": self.app_id,
                  "secret": self._secret}  # fmt: skip
        async with self.session().get(self.base + "/cgi-bin/token", params=params) as answer:
            data = _raise_for(await answer.json(content_type=None))
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeChatError(-2, "no access_token in the answer")
        return token, int(data.get("expires_in") or 7200)

    async def _call(
        self, path: str, *, params: dict[str, str] | None = None, json_body: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None, method: str = "POST",
    ) -> Any:  # fmt: skip
        """Call `path` with the token; once more with a new token when it was refused.
        Returns the parsed JSON, or the bytes of a file answer (media/get)."""
        token = await self.tokens.get()
        for attempt in (1, 2):
            body: dict[str, Any] = {}
            if json_body is not None:
                body["data"] = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
                body["headers"] = {"Content-Type": "application/json; charset=utf-8"}
            elif form is not None:
                body["data"] = form()  # a form is consumed by its request: one per try
            query = {**(params or {}), "access_token": token}
            async with self.session().request(
                method, self.base + path, params=query, **body
            ) as answer:
                kind = answer.headers.get("Content-Type", "")
                raw = await answer.read()
            if not kind.startswith(("application/json", "text/plain")):
                return raw  # a file
            data = json.loads(raw.decode("utf-8") or "{}")
            if isinstance(data, dict) and data.get("errcode") in TOKEN_REFUSED and attempt == 1:
                log.info("WeChat refused the access token (%s); getting a new one",
                         data.get("errcode"))  # fmt: skip
                token = await self.tokens.refused(token)
                continue
            return _raise_for(data)
        raise AssertionError("unreachable")

    async def send_custom(self, message: dict[str, Any]) -> dict[str, Any]:
        """A customer-service message (客服消息): text, image or msgmenu."""
        answer: dict[str, Any] = await self._call("/cgi-bin/message/custom/send", json_body=message)
        return answer

    async def send_template(self, message: dict[str, Any]) -> str:
        """A template message (模板消息); returns its msgid."""
        answer = await self._call("/cgi-bin/message/template/send", json_body=message)
        return str(answer.get("msgid", ""))

    async def upload_image(self, data: bytes, name: str = "photo.jpg") -> str:
        """A temporary image (3 days) to send by media id; returns the media id."""

        def form() -> aiohttp.FormData:
            built = aiohttp.FormData()
            built.add_field("media", data, filename=name, content_type="image/jpeg")
            return built

        answer = await self._call("/cgi-bin/media/upload", params={"type": "image"}, form=form)
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatError(-2, "no media_id in the answer")
        return media_id

    async def get_media(self, media_id: str) -> bytes:
        """The bytes of a resident's image (a MediaId of an image message)."""
        answer = await self._call("/cgi-bin/media/get", method="GET", params={"media_id": media_id})
        if not isinstance(answer, bytes):
            raise WeChatError(-2, "media/get answered without a file")
        return answer

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """The account's menu (自定义菜单), replacing the one there was."""
        await self._call("/cgi-bin/menu/create", json_body=menu)

    async def create_qr(self, scene: str) -> tuple[str, str]:
        """A permanent QR code whose scene string is `scene`: (its ticket, the URL it encodes).
        The same scene gives the same code again (WeChat allows 100,000 permanent ones)."""
        answer = await self._call(
            "/cgi-bin/qrcode/create",
            json_body={"action_name": "QR_LIMIT_STR_SCENE",
                       "action_info": {"scene": {"scene_str": scene}}},
        )  # fmt: skip
        ticket, url = answer.get("ticket"), answer.get("url")
        if not isinstance(ticket, str) or not isinstance(url, str):
            raise WeChatError(-2, "no ticket in the answer")
        return ticket, url
