"""The users' side, played by tests: updates queued for getUpdates or posted to a webhook."""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from aiohttp import ClientSession, MultipartReader

from tests.fake_telegram.routes import _read_multipart
from tests.fake_telegram.rules import MAX_DOWNLOAD_SIZE, _utf16_len
from tests.fake_telegram.state import _file_fields, _Pending, _without_reply


class UserSide:
    """A user writes, sends a photo or a location, presses a button; Telegram posts to a webhook."""

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
