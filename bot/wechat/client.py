"""What the Official Account's API and the WeCom app's API share: errcode answers, the access
token (shared by every process through the database) and the call with its one token retry.

WeChat and WeCom give one account one valid token at a time, and a process asking for its own
would end the others': the token lives in `wechat_tokens` (`storage/wechat.py`) under the
account's name (`mp:<app id>`, `wecom:<corp id>:<agent id>`). A call answered with
40001/40014/42001 (token invalid or expired) forgets that token, fetches a new one and is made
once more. Every other errcode is raised as `WeChatError` for the caller to judge (the senders
back off on limits, fail what can never go).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp

from storage.wechat import WeChatStore
from workflow.clock import Clock

log = logging.getLogger(__name__)

# errcodes that mean "this token is no good": refresh once and retry.
TOKEN_REFUSED = frozenset({40001, 40014, 42001})
# A token is renewed this long before the API says it expires (its clock and ours differ).
TOKEN_MARGIN = timedelta(minutes=5)
TIMEOUT = aiohttp.ClientTimeout(total=20)  # each call; well inside a row's 30 s claim


class WeChatError(Exception):
    """WeChat or WeCom answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def raise_for(data: Any) -> dict[str, Any]:
    """The answer as a dict, or WeChatError when it says errcode != 0."""
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
        """The API refused `token`: forget it everywhere and get another."""
        await self.store.forget_token(token)
        self._token = None
        return await self._fresh()

    async def _fresh(self) -> str:
        token, lives = await self.fetch()
        now = self.clock.now()
        expires = now + timedelta(seconds=max(lives, 0))
        await self.store.save_token(token, expires, now)
        self._token, self._until = token, expires - TOKEN_MARGIN
        log.info("new access token for %s (valid %ss)", self.store.account, lives)
        return token


class ApiClient(ABC):
    """An aiohttp session, the shared token, and `_call` with the one token retry; the
    subclass says how a token is fetched (`_fetch_token`) and names its calls."""

    def __init__(self, base: str, store: WeChatStore, clock: Clock) -> None:
        self.base = base.rstrip("/")
        self.tokens = AccessTokens(store, clock, self._fetch_token)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @abstractmethod
    async def _fetch_token(self) -> tuple[str, int]:
        """A new access token and the seconds it lives (each API asks its own way)."""

    async def _get_token(self, path: str, params: dict[str, str]) -> tuple[str, int]:
        """GET `path` (cgi-bin/token, cgi-bin/gettoken): (token, seconds it lives)."""
        async with self.session().get(self.base + path, params=params) as answer:
            data = raise_for(await answer.json(content_type=None))
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
                log.info("%s refused the access token (%s); getting a new one",
                         self.base, data.get("errcode"))  # fmt: skip
                token = await self.tokens.refused(token)
                continue
            return raise_for(data)
        raise AssertionError("unreachable")

    def _image_form(self, data: bytes, name: str) -> Callable[[], aiohttp.FormData]:
        def form() -> aiohttp.FormData:
            built = aiohttp.FormData()
            built.add_field("media", data, filename=name, content_type="image/jpeg")
            return built

        return form

    async def _upload(self, path: str, data: bytes, name: str) -> str:
        """A temporary image (3 days) to send by media id; returns the media id."""
        answer = await self._call(path, params={"type": "image"}, form=self._image_form(data, name))
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatError(-2, "no media_id in the answer")
        return media_id

    async def _media(self, path: str, media_id: str) -> bytes:
        answer = await self._call(path, method="GET", params={"media_id": media_id})
        if not isinstance(answer, bytes):
            raise WeChatError(-2, "media/get answered without a file")
        return answer
