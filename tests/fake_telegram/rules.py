"""What Telegram insists on: size limits, HTML parse-mode validation, inline keyboards, and the
flood limits (`enforce_limits`) measured on an injectable clock."""

from __future__ import annotations

import copy
import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fake_telegram.state import Call


DEFAULT_TOKEN = "123456:TEST"
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64
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


class FloodLimits:
    """Counts every accepted send in `receipts` and, once enforced, refuses the ones over
    Telegram's limits with 429."""

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
