"""A fake Telegram Bot API server on loopback, so end-to-end tests can drive the real aiogram Bot.

The bot under test talks HTTP to this server exactly as it would to api.telegram.org
(`AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))`); the test plays the users by
queueing updates (`send_text`, `send_photo`, `press`, ...) and inspects what the bot did through
`calls`, `sent()` and `wait_sent()`.

It imitates the parts of Telegram's behaviour that tend to catch real bugs: per-chat message ids,
HTML parse-mode validation (stray `<` or unsupported tags are rejected like Telegram does), the
4096/1024 text and caption limits, 64-byte callback data, "message is not modified" on no-op
edits, unknown callback query ids, the 20 MB getFile limit, getUpdates offset confirmation and
the 409 conflict while a webhook is set. Markdown parse modes are passed through unparsed.

Every accepted send is kept in `receipts` (time, chat, cost). `enforce_limits()` turns on
Telegram's flood limits for one bot token: sends over them are answered 429 with a
`retry_after`, and counted in `too_many_requests`. The limits are measured on a clock the test
can inject (its ManualClock), so they hold without any real waiting.
"""

from __future__ import annotations

import asyncio
import copy
import html
import io
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, MultipartReader, web
from aiohttp.web_request import FileField

if TYPE_CHECKING:
    from aiogram import Bot

DEFAULT_TOKEN = "123456:TEST"
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

# Form fields that are plain strings even when they happen to look like JSON ("123", "true");
# every other form field is JSON-decoded when it parses, as aiogram JSON-encodes non-strings.
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "file_id",
        "photo",
        "document",
        "video",
        "voice",
        "audio",
        "animation",
        "sticker",
        "video_note",
        "thumbnail",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "title",
        "description",
        "short_description",
        "name",
        "emoji",
        "address",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "ip_address",
        "language_code",
        "question",
        "explanation",
        "custom_title",
        "invite_link",
        "certificate",
        "payload",
        "currency",
        "start_parameter",
    }
)

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_HTML_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


class ApiError(Exception):
    """An error answer (`ok: false`); raised inside method handlers."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def _bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Upload:
    """One multipart file part of a request."""

    field: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Call:
    """One Bot API request as the server saw it: params are decoded, uploads kept apart."""

    method: str
    params: dict[str, Any]
    files: dict[str, Upload] = field(default_factory=dict)
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass
class FakeFile:
    """A file Telegram knows about: getFile describes it, /file/ serves its bytes."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_size: int
    data: bytes | None


@dataclass
class _Failure:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | str | None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class Receipt:
    """A send the server accepted: when (whole microseconds on the limits' clock), to which
    chat, by which method, and how many messages it posted (an album of n counts n)."""

    at_us: int
    chat_id: Any
    method: str
    cost: int

    @property
    def at(self) -> float:
        """Seconds since the epoch."""
        return self.at_us / 1_000_000


@dataclass(frozen=True)
class _Limits:
    per_second: int | None
    chat_interval_us: int
    group_per_minute: int | None
    now: Callable[[], float]


# Methods that post messages: the ones Telegram's flood limits count.
_SEND_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendvideo",
        "sendmediagroup",
        "copymessage",
        "forwardmessage",
        "sendlocation",
        "sendcontact",
        "sendsticker",
        "sendvoice",
        "sendaudio",
        "sendanimation",
    }
)


def _window_wait_us(
    recent: list[Receipt], capacity: int, cost: int, length_us: int, now_us: int
) -> int:
    """Microseconds until `cost` more messages fit in a sliding window holding `recent`."""
    excess = sum(r.cost for r in recent) + min(cost, capacity) - capacity
    freed = 0
    for receipt in recent:
        if excess <= 0:
            break
        freed += receipt.cost
        if freed >= excess:
            return receipt.at_us + length_us - now_us
    return 0


@dataclass
class _Pending:
    update: dict[str, Any]
    forced: bool  # re-delivery of an explicit update_id: survives one confirmation
    delivered: bool = False


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def html_to_text(source: str) -> str:
    """Telegram's HTML parse mode: the plain text, or ApiError for markup Telegram rejects."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0

    def offset(index: int) -> int:
        return len(source[:index].encode("utf-8"))

    def data(chunk: str, start: int) -> None:
        stray = chunk.find("<")
        if stray >= 0:
            at = offset(start + stray)
            raise _bad_request(f'can\'t parse entities: Unexpected "<" at byte offset {at}')
        out.append(_HTML_ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), chunk))

    for match in _TAG_RE.finditer(source):
        data(source[pos : match.start()], pos)
        pos = match.end()
        closing, name = match.group(1) == "/", match.group(2).lower()
        if not closing:
            if name not in _HTML_TAGS:
                raise _bad_request(
                    f'can\'t parse entities: Unsupported start tag "{name}" '
                    f"at byte offset {offset(match.start())}"
                )
            stack.append(name)
        elif not stack or stack[-1] != name:
            expected = f'"</{stack[-1]}>"' if stack else "no end tag"
            raise _bad_request(
                f"can't parse entities: Unmatched end tag at byte offset "
                f'{offset(match.start())}, expected {expected}, found "</{name}>"'
            )
        else:
            stack.pop()
    data(source[pos:], pos)
    if stack:
        raise _bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return "".join(out)


def _photo_variants(data: bytes) -> list[tuple[int, int, bytes]]:
    """(width, height, bytes) per PhotoSize, smallest first; the last one is `data` itself."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
            variants = []
            for side in (90, 320, 800):
                if side >= max(width, height):
                    break
                thumb = image.convert("RGB")
                thumb.thumbnail((side, side))
                buf = io.BytesIO()
                thumb.save(buf, "JPEG", quality=70)
                variants.append((thumb.width, thumb.height, buf.getvalue()))
    except Exception:  # not a decodable image: nominal sizes, prefixes as "thumbnails"
        n = len(data)
        return [
            (90, 68, data[: n // 64]),
            (320, 240, data[: n // 16]),
            (800, 600, data[: n // 4]),
            (1280, 960, data),
        ]
    return [*variants, (width, height, data)]


class FakeTelegram:
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
            "senddocument": self._send_document,
            "sendvideo": self._send_video,
            "sendmediagroup": self._send_media_group,
            "copymessage": self._copy_message,
            "forwardmessage": self._forward_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "getfile": self._get_file,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
        }

    # ------------------------------------------------------------------ server lifecycle

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

    # ------------------------------------------------------------------ HTTP layer

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

    # ------------------------------------------------------------------ inspection helpers

    def calls_of(self, method: str) -> list[Call]:
        """Calls of one method (case-insensitive), oldest first."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent (as returned at send time), optionally to one chat only."""
        return [
            copy.deepcopy(m) for m in self._sent if chat_id is None or m["chat"]["id"] == chat_id
        ]

    def last_sent(self, chat_id: int) -> dict[str, Any]:
        """The newest message the bot sent to a chat; AssertionError when there is none."""
        sent = self.sent(chat_id)
        if not sent:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return sent[-1]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message as it looks now (after edits); KeyError when unknown or deleted."""
        return copy.deepcopy(self._messages[(chat_id, message_id)])

    async def wait_sent(
        self,
        chat_id: int,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - an upper bound, the wait ends on the send
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent `count` messages to a chat; returns all sent to it."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.sent(chat_id)) >= count)
        except TimeoutError:
            texts = [m.get("text", m.get("caption")) for m in self.sent(chat_id)]
            raise AssertionError(
                f"expected {count} messages to chat {chat_id} within {timeout}s, got {texts}"
            ) from None
        return self.sent(chat_id)

    async def wait_calls(
        self,
        method: str,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - an upper bound, the wait ends on the call
        *,
        answered: bool = True,
    ) -> list[Call]:
        """Wait until `count` calls of `method` were answered (or merely received, e.g. a long
        poll still waiting); returns those calls."""

        def matching() -> list[Call]:
            calls = self.calls_of(method)
            if answered:
                calls = [c for c in calls if c.result is not None or c.error is not None]
            return calls

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            raise AssertionError(
                f"expected {count} {method} calls within {timeout}s, got {len(matching())}"
            ) from None
        return matching()

    # ------------------------------------------------------------------ failure injection

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        *,
        chat_id: int | str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`, if given) with an error;
        `parameters` are the ResponseParameters to add (e.g. migrate_to_chat_id)."""
        self._failures.append(
            _Failure(
                method.lower(), error_code, description, retry_after, times, chat_id, parameters
            )
        )

    def _maybe_fail(self, call: Call) -> None:
        for failure in self._failures:
            if failure.method != call.method.lower() or failure.remaining <= 0:
                continue
            if failure.chat_id is not None and call.params.get("chat_id") != failure.chat_id:
                continue
            failure.remaining -= 1
            params = dict(failure.parameters or {})
            if failure.retry_after:
                params["retry_after"] = failure.retry_after
            raise ApiError(failure.error_code, failure.description, params or None)

    # ------------------------------------------------------------------ flood limits

    def enforce_limits(
        self,
        per_second: int | None = 30,
        chat_interval: float | None = 1.0,
        group_per_minute: int | None = 20,
        *,
        now: Callable[[], float] | None = None,
    ) -> None:
        """Refuse sends over Telegram's limits with 429 and retry_after (whole seconds, as
        Telegram gives it): `per_second` over all chats in any 1 s; one message per
        `chat_interval` in a chat (an album of n: the next after n intervals); `group_per_minute`
        in any 60 s in a group. `now` (seconds) is the clock they are measured on; None switches
        a limit off."""
        self._limits = _Limits(
            per_second,
            round((chat_interval or 0) * 1_000_000),
            group_per_minute,
            now or self._now,
        )

    def max_in_window(self, seconds: float, chat_id: Any = None) -> int:
        """The most messages accepted within any `seconds` (to one chat, if given)."""
        receipts = self.receipts if chat_id is None else self._receipts_by_chat.get(chat_id, [])
        length = round(seconds * 1_000_000)
        most = total = start = 0
        for receipt in receipts:
            total += receipt.cost
            while receipts[start].at_us <= receipt.at_us - length:
                total -= receipts[start].cost
                start += 1
            most = max(most, total)
        return most

    def _admit(self, call: Call) -> Receipt | None:
        """Count a send, or refuse it with 429 when it would break the enforced limits."""
        method = call.method.lower()
        if method not in _SEND_METHODS:
            return None
        chat_id = call.params.get("chat_id")
        media = call.params.get("media")
        cost = len(media) if method == "sendmediagroup" and isinstance(media, list) else 1
        clock = self._limits.now if self._limits is not None else self._now
        now_us = round(clock() * 1_000_000)
        if self._limits is not None:
            wait_us = self._limit_wait_us(self._limits, chat_id, cost, now_us)
            if wait_us > 0:
                self.too_many_requests += 1
                retry_after = max(1, math.ceil(wait_us / 1_000_000))
                raise ApiError(
                    429,
                    f"Too Many Requests: retry after {retry_after}",
                    {"retry_after": retry_after},
                )
        receipt = Receipt(now_us, chat_id, call.method, cost)
        self.receipts.append(receipt)
        self._receipts_by_chat.setdefault(chat_id, []).append(receipt)
        return receipt

    def _limit_wait_us(self, limits: _Limits, chat_id: Any, cost: int, now_us: int) -> int:
        wait = 0
        if limits.per_second is not None:
            recent = []
            for receipt in reversed(self.receipts):
                if receipt.at_us <= now_us - 1_000_000:
                    break
                recent.append(receipt)
            recent.reverse()
            wait = _window_wait_us(recent, limits.per_second, cost, 1_000_000, now_us)
        chat = self._receipts_by_chat.get(chat_id, [])
        if chat and limits.chat_interval_us:
            last = chat[-1]
            wait = max(wait, last.at_us + last.cost * limits.chat_interval_us - now_us)
        if limits.group_per_minute is not None and isinstance(chat_id, int) and chat_id < 0:
            recent = [r for r in chat if r.at_us > now_us - 60_000_000]
            wait = max(
                wait, _window_wait_us(recent, limits.group_per_minute, cost, 60_000_000, now_us)
            )
        return wait

    # ------------------------------------------------------------------ users, chats, files

    def user(
        self,
        id: int,
        first_name: str = "测试用户",
        language_code: str | None = "zh-hans",
        *,
        username: str | None = None,
        last_name: str | None = None,
    ) -> dict[str, Any]:
        """A Telegram User; remembered so later helpers can take just the id."""
        user: dict[str, Any] = {"id": id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[id] = user
        return copy.deepcopy(user)

    def group(self, id: int, title: str | None = None) -> dict[str, Any]:
        """A supergroup chat (negative id, like Telegram's -100... ids)."""
        if id >= 0:
            raise ValueError("group chat ids are negative")
        chat = {"id": id, "type": "supergroup", "title": title or f"网格群 {-id}"}
        self._chats[id] = chat
        return copy.deepcopy(chat)

    def register_file(
        self, data: bytes | None, *, folder: str = "documents", ext: str = "bin", size: int = 0
    ) -> FakeFile:
        """Make bytes known under a new file_id (getFile finds them, /file/ serves them)."""
        n = next(self._file_ids)
        fake = FakeFile(
            file_id=f"FAKE-{folder}-{n:05d}",
            file_unique_id=f"U{n:05d}",
            file_path=f"{folder}/file_{n}.{ext}",
            file_size=len(data) if data is not None else size,
            data=data,
        )
        self._files[fake.file_id] = fake
        self._files_by_path[fake.file_path] = fake
        return fake

    def _register_photo(self, data: bytes) -> list[dict[str, Any]]:
        sizes = []
        for width, height, blob in _photo_variants(data):
            fake = self.register_file(blob, folder="photos", ext="jpg")
            sizes.append(
                {
                    "file_id": fake.file_id,
                    "file_unique_id": fake.file_unique_id,
                    "file_size": fake.file_size,
                    "width": width,
                    "height": height,
                }
            )
        for size in sizes:
            self._photos[size["file_id"]] = sizes
        return copy.deepcopy(sizes)

    def _as_user(self, user: int | dict[str, Any]) -> dict[str, Any]:
        if isinstance(user, dict):
            self._users[user["id"]] = copy.deepcopy(user)
            return copy.deepcopy(user)
        return copy.deepcopy(self._users[user]) if user in self._users else self.user(user)

    def _chat_object(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self._chats:
            return copy.deepcopy(self._chats[chat_id])
        if chat_id < 0:
            return self.group(chat_id)
        user = self._users.get(chat_id, {"first_name": "测试用户"})
        chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        for key in ("last_name", "username"):
            if key in user:
                chat[key] = user[key]
        return chat

    def _as_chat(self, chat: int | dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
        if isinstance(chat, dict):
            self._chats[chat["id"]] = copy.deepcopy(chat)
            chat_id = chat["id"]
        else:
            chat_id = chat
        if chat_id > 0 and chat_id != user["id"]:
            raise ValueError(f"private chat {chat_id} belongs to user {chat_id}, not {user['id']}")
        return self._chat_object(chat_id)

    def _next_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    # ------------------------------------------------------------------ incoming updates

    def queue(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update. Without update_id one is assigned; with one (a repeat of an
        update) it is delivered once more even if already confirmed, as after a bot crash."""
        update = copy.deepcopy(update)
        forced = "update_id" in update
        if not forced:
            update = {"update_id": next(self._update_ids), **update}
        self._pending.append(_Pending(update, forced))
        self._wake_pollers()
        return copy.deepcopy(update)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by the bot (for webhook tests and assertions)."""
        return [copy.deepcopy(p.update) for p in self._pending]

    def _wake_pollers(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def _incoming(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        reply_to_message_id: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        sender = self._as_user(user)
        chat_obj = self._as_chat(chat, sender)
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_obj["id"]),
            "from": sender,
            "chat": chat_obj,
            "date": int(self._now()),
        }
        if reply_to_message_id is not None:
            original = self._messages.get((chat_obj["id"], reply_to_message_id))
            if original is None:
                raise LookupError(f"no message {reply_to_message_id} in chat {chat_obj['id']}")
            message["reply_to_message"] = _without_reply(original)
        message.update({k: v for k, v in content.items() if v is not None})
        self._messages[(chat_obj["id"], message["message_id"])] = message
        return self.queue({"message": message})

    def send_text(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        text: str,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user writes text (a leading /command gets its bot_command entity)."""
        entities = None
        if command := re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text):
            entities = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command[0])}]
        return self._incoming(chat, user, reply_to_message_id, text=text, entities=entities)

    def send_photo(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        file_bytes: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """A user sends a photo; its PhotoSizes are downloadable, the largest is the bytes."""
        return self._incoming(
            chat,
            user,
            photo=self._register_photo(file_bytes),
            caption=caption,
            media_group_id=media_group_id,
        )

    def send_location(
        self, chat: int | dict[str, Any], user: int | dict[str, Any], lat: float, lon: float
    ) -> dict[str, Any]:
        """A user shares a location."""
        return self._incoming(chat, user, location={"latitude": lat, "longitude": lon})

    def send_contact(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        phone: str,
        *,
        own: bool = True,
        first_name: str | None = None,
    ) -> dict[str, Any]:
        """A user shares a contact; `own` (the request_contact button) carries their user_id."""
        sender = self._as_user(user)
        contact: dict[str, Any] = {
            "phone_number": phone,
            "first_name": first_name or sender["first_name"],
        }
        if own:
            contact["user_id"] = sender["id"]
        return self._incoming(chat, sender, contact=contact)

    def send_sticker(
        self, chat: int | dict[str, Any], user: int | dict[str, Any], emoji: str = "👍"
    ) -> dict[str, Any]:
        """A user sends a sticker (content the intake cannot use)."""
        fake = self.register_file(b"RIFF-fake-webp", folder="stickers", ext="webp")
        sticker = {
            "file_id": fake.file_id,
            "file_unique_id": fake.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": fake.file_size,
        }
        return self._incoming(chat, user, sticker=sticker)

    def send_voice(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        duration: int = 3,
        data: bytes = b"OggS-fake-voice",
    ) -> dict[str, Any]:
        """A user sends a voice note."""
        fake = self.register_file(data, folder="voice", ext="oga")
        voice = {**_file_fields(fake), "duration": duration, "mime_type": "audio/ogg"}
        return self._incoming(chat, user, voice=voice)

    def send_document(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        file_name: str = "report.pdf",
        file_size: int | None = None,
        *,
        data: bytes | None = None,
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> dict[str, Any]:
        """A user sends a document; a declared `file_size` over 20 MB makes getFile refuse it."""
        if data is None:
            size = file_size if file_size is not None else 1024
            data = bytes(size) if size <= MAX_DOWNLOAD_SIZE else None
        else:
            size = len(data)
        ext = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        fake = self.register_file(data, folder="documents", ext=ext, size=size)
        document = {**_file_fields(fake), "file_name": file_name, "mime_type": mime_type}
        return self._incoming(chat, user, document=document, caption=caption)

    def send_video(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        duration: int = 5,
        data: bytes = b"fake-mp4-video",
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """A user sends a video."""
        fake = self.register_file(data, folder="videos", ext="mp4")
        video = {
            **_file_fields(fake),
            "width": 1280,
            "height": 720,
            "duration": duration,
            "mime_type": "video/mp4",
        }
        return self._incoming(
            chat, user, video=video, caption=caption, media_group_id=media_group_id
        )

    def press(
        self,
        chat: int | dict[str, Any],
        user: int | dict[str, Any],
        message_id: int,
        data: str,
        *,
        strict: bool = True,
    ) -> dict[str, Any]:
        """A user presses an inline button; `strict` insists the message carries that button."""
        sender = self._as_user(user)
        chat_id = chat["id"] if isinstance(chat, dict) else chat
        message = self._messages.get((chat_id, message_id))
        if message is None:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        if strict:
            buttons = [
                b.get("callback_data")
                for row in message.get("reply_markup", {}).get("inline_keyboard", [])
                for b in row
            ]
            if data not in buttons:
                raise ValueError(f"message {message_id} has no button {data!r}: {buttons}")
        query_id = f"{next(self._callback_ids)}{self.bot_user['id']}"
        self._callback_queries.add(query_id)
        return self.queue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": sender,
                    "message": copy.deepcopy(message),
                    "chat_instance": f"ci{chat_id}",
                    "data": data,
                }
            }
        )

    # ------------------------------------------------------------------ webhooks

    async def post_update_to(
        self, url: str, update: dict[str, Any], secret_token: str | None = None
    ) -> tuple[int, str]:
        """POST an update to a webhook like Telegram does; a method in the reply is executed."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret_token} if secret_token else {}
        async with (
            ClientSession() as session,
            session.post(url, json=update, headers=headers) as resp,
        ):
            if resp.status == 200 and resp.content_type.startswith("multipart/"):
                params, files = await _read_multipart(MultipartReader.from_response(resp))
                method = params.pop("method", None)
                if method:
                    await self.execute(str(method), params, files)
                return resp.status, ""
            return resp.status, await resp.text()

    async def flush_webhook(self) -> list[tuple[int, str]]:
        """Deliver pending updates to the webhook set by the bot; confirmed when answered 200."""
        if self.webhook_url is None:
            raise RuntimeError("no webhook is set")
        answers = []
        for pending in list(self._pending):
            answer = await self.post_update_to(
                self.webhook_url, pending.update, self.webhook_secret
            )
            answers.append(answer)
            if answer[0] == 200:
                self._pending.remove(pending)
        return answers

    # ------------------------------------------------------------------ method handlers

    async def _fallback(self, call: Call) -> Any:
        return True

    async def _get_me(self, call: Call) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_updates(self, call: Call) -> list[dict[str, Any]]:
        if self.webhook_url is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        params = call.params
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = float(params.get("timeout") or 0)
        if offset is not None:
            offset = int(offset)
            if offset < 0:
                self._pending = self._pending[offset:]
            else:
                self._pending = [
                    p
                    for p in self._pending
                    if p.update["update_id"] >= offset or (p.forced and not p.delivered)
                ]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._pending and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                break
        batch = self._pending[:limit]
        for pending in batch:
            pending.delivered = True
        return [copy.deepcopy(p.update) for p in batch]

    def _target_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if not isinstance(chat_id, int):
            raise _bad_request("chat not found")
        return self._chat_object(chat_id)

    def _render(self, text: Any, parse_mode: Any, *, limit: int, what: str) -> str:
        text = "" if text is None else str(text)
        if isinstance(parse_mode, str) and parse_mode.upper() == "HTML":
            text = html_to_text(text)
        if _utf16_len(text) > limit:
            raise _bad_request(f"{what} is too long")
        return text

    def _bot_message(
        self, chat: dict[str, Any], params: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        """Store a message the bot sends and return it as Telegram would."""
        message: dict[str, Any] = {
            "message_id": 0,
            "from": copy.deepcopy(self.bot_user),
            "chat": chat,
            "date": int(self._now()),
        }
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {"message_id": params["reply_to_message_id"]}
        if isinstance(reply, dict):
            original = self._messages.get((chat["id"], int(reply["message_id"])))
            if original is not None:
                message["reply_to_message"] = _without_reply(original)
            elif not reply.get("allow_sending_without_reply"):
                raise _bad_request("message to be replied not found")
        markup = _inline_markup(params.get("reply_markup"))
        message.update({k: v for k, v in content.items() if v is not None and v != ""})
        if markup is not None:
            message["reply_markup"] = markup
        message["message_id"] = self._next_message_id(chat["id"])
        self._messages[(chat["id"], message["message_id"])] = message
        self._sent.append(copy.deepcopy(message))
        return copy.deepcopy(message)

    def _caption(self, params: dict[str, Any]) -> str:
        return self._render(
            params.get("caption"),
            params.get("parse_mode"),
            limit=CAPTION_LIMIT,
            what="message caption",
        )

    async def _send_message(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        text = self._render(
            call.params.get("text"), call.params.get("parse_mode"), limit=TEXT_LIMIT, what="message"
        )
        if not text.strip():
            raise _bad_request("message text is empty")
        return self._bot_message(chat, call.params, text=text)

    def _upload(self, call: Call, value: Any, name: str) -> Upload | None:
        """The uploaded part for `attach://key` (or a bare file part named `name`), else None."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = call.files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad_request(f"file {value} not found in the request")
            return upload
        if value is None and name:
            return call.files.get(name)
        return None

    def _photo_sizes(self, call: Call, value: Any, name: str = "photo") -> list[dict[str, Any]]:
        upload = self._upload(call, value, name)
        if upload is not None:
            return self._register_photo(upload.data)
        if not value:
            raise _bad_request("there is no photo in the request")
        value = str(value)
        if value.startswith(("http://", "https://")):
            return self._register_photo(b"")
        if value in self._photos:
            return copy.deepcopy(self._photos[value])
        if value in self._files:
            raise _bad_request("type of file mismatch")
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _other_file(self, call: Call, value: Any, kind: str) -> dict[str, Any]:
        upload = self._upload(call, value, kind)
        if upload is not None:
            filename = upload.filename or f"{kind}.bin"
            ext = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
            out = _file_fields(self.register_file(upload.data, folder=f"{kind}s", ext=ext))
            if kind == "document":
                out["file_name"] = filename
            return out
        if isinstance(value, str) and value in self._files:
            return _file_fields(self._files[value])
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return _file_fields(self.register_file(b"", folder=f"{kind}s"))
        raise _bad_request(f"there is no {kind} in the request")

    async def _send_photo(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        caption = self._caption(call.params)
        photo = self._photo_sizes(call, call.params.get("photo"))
        return self._bot_message(chat, call.params, photo=photo, caption=caption)

    async def _send_document(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        caption = self._caption(call.params)
        document = self._other_file(call, call.params.get("document"), "document")
        return self._bot_message(chat, call.params, document=document, caption=caption)

    async def _send_video(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        caption = self._caption(call.params)
        video = self._other_file(call, call.params.get("video"), "video")
        return self._bot_message(chat, call.params, video=video, caption=caption)

    async def _send_media_group(self, call: Call) -> list[dict[str, Any]]:
        chat = self._target_chat(call.params)
        media = call.params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad_request("media group must contain 2-10 items")
        group_id = f"{next(self._media_group_ids):012d}"
        contents = []
        for item in media:  # validate everything before sending anything
            kind = item.get("type")
            caption = self._caption(item)
            if kind == "photo":
                content = {"photo": self._photo_sizes(call, item.get("media"), "")}
            elif kind in ("video", "document", "audio"):
                content = {kind: self._other_file(call, item.get("media"), kind)}
            else:
                raise _bad_request(f"unsupported media type {kind!r} in the media group")
            contents.append({**content, "caption": caption, "media_group_id": group_id})
        params = {k: v for k, v in call.params.items() if k != "reply_markup"}
        return [self._bot_message(chat, params, **content) for content in contents]

    def _source_message(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self._messages.get((params.get("from_chat_id"), params.get("message_id")))
        if source is None:
            raise _bad_request("message to copy not found")
        return source

    async def _copy_message(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        source = self._source_message(call.params)
        content = {k: copy.deepcopy(source[k]) for k in _CONTENT_KEYS if k in source}
        if "caption" in call.params:
            content["caption"] = self._caption(call.params)
        message = self._bot_message(chat, call.params, **content)
        return {"message_id": message["message_id"]}

    async def _forward_message(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call.params)
        source = self._source_message(call.params)
        content = {k: copy.deepcopy(source[k]) for k in _CONTENT_KEYS if k in source}
        origin = {"type": "user", "sender_user": source["from"], "date": source["date"]}
        params = {k: v for k, v in call.params.items() if k != "reply_markup"}
        return self._bot_message(chat, params, forward_origin=origin, **content)

    def _editable(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The stored message an edit targets; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        message = self._messages.get((params.get("chat_id"), params.get("message_id")))
        if message is None:
            raise _bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return message

    def _apply_edit(
        self, message: dict[str, Any], key: str, value: str | None, markup: Any
    ) -> dict[str, Any]:
        new_markup = _inline_markup(markup)
        if message.get(key) == value and message.get("reply_markup") == new_markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        if key != "reply_markup":
            message[key] = value
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(self._now())
        return copy.deepcopy(message)

    async def _edit_message_text(self, call: Call) -> dict[str, Any] | bool:
        text = self._render(
            call.params.get("text"), call.params.get("parse_mode"), limit=TEXT_LIMIT, what="message"
        )
        if not text.strip():
            raise _bad_request("message text is empty")
        message = self._editable(call.params)
        if message is None:
            return True
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        return self._apply_edit(message, "text", text, call.params.get("reply_markup"))

    async def _edit_message_caption(self, call: Call) -> dict[str, Any] | bool:
        caption = self._caption(call.params) or None
        message = self._editable(call.params)
        if message is None:
            return True
        if "text" in message:
            raise _bad_request("there is no caption in the message to edit")
        return self._apply_edit(message, "caption", caption, call.params.get("reply_markup"))

    async def _edit_message_reply_markup(self, call: Call) -> dict[str, Any] | bool:
        message = self._editable(call.params)
        if message is None:
            return True
        markup = _inline_markup(call.params.get("reply_markup"))
        return self._apply_edit(message, "reply_markup", markup, markup)

    async def _delete_message(self, call: Call) -> bool:
        self._messages.pop((call.params.get("chat_id"), call.params.get("message_id")), None)
        return True

    async def _answer_callback_query(self, call: Call) -> bool:
        if call.params.get("callback_query_id") not in self._callback_queries:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    async def _get_file(self, call: Call) -> dict[str, Any]:
        fake = self._files.get(str(call.params.get("file_id")))
        if fake is None:
            raise _bad_request("invalid file_id")
        if fake.file_size > MAX_DOWNLOAD_SIZE:
            raise _bad_request("file is too big")
        return {**_file_fields(fake), "file_path": fake.file_path}

    async def _set_webhook(self, call: Call) -> bool:
        url = call.params.get("url") or None
        self.webhook_url = url
        self.webhook_secret = call.params.get("secret_token") if url else None
        if call.params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _delete_webhook(self, call: Call) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if call.params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, call: Call) -> dict[str, Any]:
        return {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }


_CONTENT_KEYS = (
    "text",
    "entities",
    "photo",
    "caption",
    "document",
    "video",
    "voice",
    "sticker",
    "location",
    "contact",
)


def _file_fields(fake: FakeFile) -> dict[str, Any]:
    return {
        "file_id": fake.file_id,
        "file_unique_id": fake.file_unique_id,
        "file_size": fake.file_size,
    }


def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
    """A message as nested in reply_to_message (Telegram nests one level only)."""
    return {k: copy.deepcopy(v) for k, v in message.items() if k != "reply_to_message"}


def _inline_markup(markup: Any) -> dict[str, Any] | None:
    """The markup Telegram echoes in a Message (inline keyboards only), validated."""
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            if set(button) <= {"text"}:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT:
                raise _bad_request("BUTTON_DATA_INVALID")
    return copy.deepcopy(markup)


def _decode_field(name: str, value: str) -> Any:
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


async def _read_multipart(reader: MultipartReader) -> tuple[dict[str, Any], dict[str, Upload]]:
    params: dict[str, Any] = {}
    files: dict[str, Upload] = {}
    async for part in reader:
        name = part.name or ""
        if part.filename is not None:
            files[name] = Upload(
                name,
                part.filename,
                part.headers.get("Content-Type", "application/octet-stream"),
                bytes(await part.read()),
            )
        else:
            params[name] = _decode_field(name, await part.text())
    return params, files


async def _read_request(request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Params from the query string and a JSON, urlencoded or multipart body."""
    params: dict[str, Any] = {k: _decode_field(k, v) for k, v in request.query.items()}
    files: dict[str, Upload] = {}
    if request.method != "POST" or not request.can_read_body:
        return params, files
    if request.content_type == "application/json":
        params.update(await request.json())
        return params, files
    for name, value in (await request.post()).items():
        if isinstance(value, FileField):
            files[name] = Upload(name, value.filename, value.content_type, value.file.read())
        else:
            params[name] = _decode_field(name, str(value))
    return params, files


def _json_response(body: dict[str, Any], status: int) -> web.Response:
    # Escaped like Telegram does: a user's lone surrogate travels as \ud800, not as bad UTF-8.
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")
