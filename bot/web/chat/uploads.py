"""Photos a browser uploads: held in memory until the turn that stores them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from handlers.messages import PhotoRef
from storage.media import MediaRefused, MediaStore
from storage.webchat import CHANNEL, WebChatStore


@dataclass
class _Upload:
    data: bytes | None  # None: over the size limit, only its size is known
    size: int
    message_id: int | None = None  # the chat's history row that shows it


class WebPhotos:
    """The PhotoSaver of uploads: their bytes wait in memory and are stored inside the turn,
    so a refused file gets the turn's localized answer and a failed turn stores no row."""

    def __init__(self, media: MediaStore) -> None:
        self.media = media
        self._held: dict[str, _Upload] = {}

    def hold(self, data: bytes | None, size: int) -> str:
        file_id = "upload-" + secrets.token_hex(8)
        self._held[file_id] = _Upload(data, size)
        return file_id

    def shown_in(self, file_id: str, message_id: int) -> None:
        """The history row of the upload: once stored, its photo is shown there too."""
        upload = self._held.get(file_id)
        if upload is not None:
            upload.message_id = message_id

    def release(self, file_id: str) -> None:
        self._held.pop(file_id, None)

    async def save(self, uow: Any, channel: str, ref: PhotoRef) -> int:
        upload = self._held.get(ref.file_id)
        if upload is None or upload.size == 0:
            raise MediaRefused("empty_file", "the upload is empty or no longer held")
        if upload.data is None:
            limit = self.media.max_bytes / 1048576
            limit_mb = int(limit) if limit.is_integer() else round(limit, 1)
            raise MediaRefused(
                "too_large", f"upload of {upload.size} bytes", size=upload.size, limit_mb=limit_mb
            )
        row = await self.media.save_photo(
            uow.session, upload.data, now=uow.clock.now(), channel=CHANNEL, channel_file_id=None
        )
        if upload.message_id is not None:
            # The sender's own thumbnail: the location-free copy, as others are shown.
            await WebChatStore(uow.session).add_photo(upload.message_id, row.public_sha256)
        return row.id
