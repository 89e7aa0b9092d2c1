"""The Bot API methods the bot calls, and how requests are read (JSON, form or multipart)."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from aiohttp import MultipartReader, web
from aiohttp.web_request import FileField

from tests.fake_telegram.rules import (
    CAPTION_LIMIT,
    MAX_DOWNLOAD_SIZE,
    TEXT_LIMIT,
    ApiError,
    _bad_request,
    _inline_markup,
    _utf16_len,
    html_to_text,
)
from tests.fake_telegram.state import Call, Upload, _file_fields, _without_reply

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


class BotApiMethods:
    """One handler per Bot API method the bot uses; anything else is answered `true`."""

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

    def _edited(self, call: Call, field: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The message an edit names, and the markup it sets, refused as Telegram refuses."""
        chat = self._target_chat(call.params)
        message = self._messages.get((chat["id"], int(call.params.get("message_id") or 0)))
        if message is None:
            raise _bad_request("message to edit not found")
        if field == "text" and "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        if field == "caption" and "photo" not in message:
            raise _bad_request("there is no caption in the message to edit")
        if message.get("_too_old"):
            raise _bad_request("message can't be edited")
        return message, _inline_markup(call.params.get("reply_markup"))

    def _apply_edit(
        self, message: dict[str, Any], markup: dict[str, Any] | None, **content: str
    ) -> dict[str, Any]:
        before = (copy.deepcopy({k: message.get(k) for k in content}), message.get("reply_markup"))
        message.update(content)
        if markup is None:
            message.pop("reply_markup", None)  # no markup in an edit: the buttons go
        else:
            message["reply_markup"] = markup
        if before == ({k: message.get(k) for k in content}, message.get("reply_markup")):
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message["edit_date"] = int(self._now())
        return copy.deepcopy(message)

    async def _edit_message_text(self, call: Call) -> dict[str, Any]:
        message, markup = self._edited(call, "text")
        text = self._render(
            call.params.get("text"), call.params.get("parse_mode"), limit=TEXT_LIMIT, what="message"
        )
        if not text.strip():
            raise _bad_request("message text is empty")
        return self._apply_edit(message, markup, text=text)

    async def _edit_message_caption(self, call: Call) -> dict[str, Any]:
        message, markup = self._edited(call, "caption")
        return self._apply_edit(message, markup, caption=self._caption(call.params))

    async def _edit_message_reply_markup(self, call: Call) -> dict[str, Any]:
        message, markup = self._edited(call, "")
        return self._apply_edit(message, markup)

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
