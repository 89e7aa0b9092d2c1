"""What the fake Telegram remembers: calls, users, chats, messages, files, injected failures."""

from __future__ import annotations

import asyncio
import copy
import io
from dataclasses import dataclass, field
from typing import Any

from tests.fake_telegram.rules import ApiError


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


@dataclass
class _Pending:
    update: dict[str, Any]
    forced: bool  # re-delivery of an explicit update_id: survives one confirmation
    delivered: bool = False


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


def _file_fields(fake: FakeFile) -> dict[str, Any]:
    return {
        "file_id": fake.file_id,
        "file_unique_id": fake.file_unique_id,
        "file_size": fake.file_size,
    }


def _without_reply(message: dict[str, Any]) -> dict[str, Any]:
    """A message as nested in reply_to_message (Telegram nests one level only)."""
    return {k: copy.deepcopy(v) for k, v in message.items() if k != "reply_to_message"}


class ChatState:
    """Inspection helpers for tests, failure injection, and the users, chats and files known."""

    def calls_of(self, method: str) -> list[Call]:
        """Calls of one method (case-insensitive), oldest first."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent (as returned at send time), optionally to one chat only."""
        return [
            copy.deepcopy(m) for m in self._sent if chat_id is None or m["chat"]["id"] == chat_id
        ]

    def current(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """A message the bot sent as the chat shows it now (after any edits)."""
        message = self._messages[(chat_id, message_id)]
        return {k: copy.deepcopy(v) for k, v in message.items() if not k.startswith("_")}

    def age_out(self, chat_id: int, message_id: int) -> None:
        """Make a message too old to edit (Telegram refuses edits after 48 hours)."""
        self._messages[(chat_id, message_id)]["_too_old"] = True

    def last_sent(self, chat_id: int) -> dict[str, Any]:
        """The newest message the bot sent to a chat; AssertionError when there is none."""
        sent = self.sent(chat_id)
        if not sent:
            raise AssertionError(f"the bot sent nothing to chat {chat_id}")
        return sent[-1]

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
