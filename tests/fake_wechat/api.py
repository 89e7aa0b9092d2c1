"""What the fake WeChat and fake WeCom APIs share: serving on loopback, access tokens that
expire on the test's clock, a quota, refusals recorded in order, uploads and user media."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


class FakeApi(ABC):
    """A subclass names its routes, its token errors and its quota message."""

    BAD_TOKEN: tuple[int, str]  # the errcode and message of an unknown access token
    QUOTA_SPENT: str  # the 45009 message

    def __init__(self, now: Callable[[], datetime], *, token_seconds: int = 7200) -> None:
        self.now = now
        self.token_seconds = token_seconds
        self.tokens: dict[str, datetime] = {}  # token -> expiry
        self.token_requests = 0
        self.uploads: dict[str, bytes] = {}
        self.user_media: dict[str, bytes] = {}
        self.refusals: list[int] = []  # errcodes answered, in order
        self.quota: int | None = None
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @abstractmethod
    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) of each call the fake answers."""

    async def __aenter__(self) -> Self:
        app = web.Application()
        for method, path, handler in self.routes():
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # Test side -------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        for token in self.tokens:
            self.tokens[token] = self.now() - timedelta(seconds=1)

    def reset_quota(self) -> None:
        self.quota = None

    # API side --------------------------------------------------------------------------------

    def _error(self, code: int, message: str) -> web.Response:
        self.refusals.append(code)
        return web.json_response({"errcode": code, "errmsg": message})

    def _limited(self) -> web.Response | None:
        """A limit of the subclass's own, checked before the quota."""
        return None

    def _check(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token not in self.tokens:
            return self._error(*self.BAD_TOKEN)
        if self.tokens[token] <= self.now():
            return self._error(42001, "access_token expired")
        if (limited := self._limited()) is not None:
            return limited
        if self.quota is not None:
            if self.quota <= 0:
                return self._error(45009, self.QUOTA_SPENT)
            self.quota -= 1
        return None

    def _new_token(self, prefix: str) -> str:
        self.token_requests += 1
        token = f"{prefix}{next(self._ids)}"
        self.tokens[token] = self.now() + timedelta(seconds=self.token_seconds)
        return token

    async def _stored_upload(self, request: web.Request, prefix: str) -> str:
        form = await request.post()
        media = form.get("media")
        data = media.file.read() if hasattr(media, "file") else b""
        media_id = f"{prefix}{next(self._ids)}"
        self.uploads[media_id] = data
        return media_id

    async def _media_get(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        data = self.user_media.get(request.query.get("media_id", ""))
        if data is None:
            return self._error(40007, "invalid media_id")
        return web.Response(body=data, content_type="image/jpeg")
