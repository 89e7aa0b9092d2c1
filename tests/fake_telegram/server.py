"""The server: aiohttp on loopback, one bot token, every call recorded and dispatched."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from aiogram import Bot
from tests.fake_telegram.client import UserSide
from tests.fake_telegram.routes import BotApiMethods, _json_response, _read_request
from tests.fake_telegram.rules import DEFAULT_TOKEN, ApiError, FloodLimits, Receipt, _Limits
from tests.fake_telegram.state import Call, ChatState, FakeFile, Upload, _Failure, _Pending


class FakeTelegram(UserSide, BotApiMethods, ChatState, FloodLimits):
    """An aiohttp server imitating the Bot API for one bot token, plus test-side helpers."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "shuoshi_test_bot",
        bot_name: str = "说事测试机器人",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.bot_user: dict[str, Any] = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self.calls: list[Call] = []
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self._now = now
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closing = False
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._media_group_ids = itertools.count(1)
        self._message_ids: dict[int, int] = {}
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._sent: list[dict[str, Any]] = []
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._files: dict[str, FakeFile] = {}
        self._files_by_path: dict[str, FakeFile] = {}
        self._photos: dict[str, list[dict[str, Any]]] = {}
        self._callback_queries: set[str] = set()
        self._failures: list[_Failure] = []
        self.receipts: list[Receipt] = []
        # Seconds of simulated round trip per Bot API call (benchmarks; tests leave it at 0).
        self.latency = 0.0
        self._bots: list[Bot] = []
        self.too_many_requests = 0  # sends refused with 429 by the enforced limits
        self._receipts_by_chat: dict[Any, list[Receipt]] = {}
        self._limits: _Limits | None = None
        self._handlers: dict[str, Callable[[Call], Any]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "sendmediagroup": self._send_media_group,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "getfile": self._get_file,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
        }

    async def start(self) -> None:
        """Serve on 127.0.0.1 at a free port; long polls are cut short by `stop()`."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._closing = False
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Release pending long polls, then shut the server down."""
        self._closing = True
        self._wake_pollers()
        for bot in self._bots:  # idempotent: tests that close their bots themselves still may
            await bot.session.close()
        self._bots.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """Root URL to give `TelegramAPIServer.from_base`."""
        if self._base_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._base_url

    def make_bot(self, **kwargs: Any) -> Bot:
        """A real aiogram Bot talking to this server; `stop()` closes its session (or close it
        earlier with `bot.session.close()`)."""
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        class LoopbackSession(AiohttpSession):
            """Skips the 250 ms grace aiogram waits on close for TLS connections: plain HTTP."""

            async def close(self) -> None:
                if self._session is not None and not self._session.closed:
                    await self._session.close()

        session = LoopbackSession(api=TelegramAPIServer.from_base(self.base_url))
        bot = Bot(token=self.token, session=session, **kwargs)
        self._bots.append(bot)
        return bot

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json_response(ApiError(401, "Unauthorized").body(), 401)
        params, files = await _read_request(request)
        if self.latency:  # the way there: Telegram sees the call half a round trip later
            await asyncio.sleep(self.latency / 2)
        status, body = await self.execute(request.match_info["method"], params, files)
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        return _json_response(body, status)

    async def _handle_file(self, request: web.Request) -> web.Response:
        fake = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or fake is None or fake.data is None:
            return _json_response(ApiError(404, "Not Found").body(), 404)
        return web.Response(body=fake.data, content_type="application/octet-stream")

    async def execute(
        self, method: str, params: dict[str, Any], files: dict[str, Upload] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Record and answer one call; also used for methods returned in webhook replies."""
        call = Call(method, params, files or {})
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        receipt = None
        try:
            self._maybe_fail(call)
            receipt = self._admit(call)
            handler = self._handlers.get(method.lower(), self._fallback)
            call.result = await handler(call)
        except ApiError as exc:
            if receipt is not None:  # refused after all: it posted nothing
                self.receipts.remove(receipt)
                self._receipts_by_chat[receipt.chat_id].remove(receipt)
            call.error = exc.body()
            status, body = exc.error_code, call.error
        else:
            status, body = 200, {"ok": True, "result": call.result}
        async with self._changed:
            self._changed.notify_all()
        return status, copy.deepcopy(body)
