"""Content-addressed photo store: validates uploads and keeps a metadata-free public copy.

Every photo is kept twice under its SHA-256: the original, exactly as received (evidence), and
a public copy (what other residents, cadres and departments see). The public copy is encoded
afresh from the pixels alone, so no metadata of the upload survives in it: not the EXIF GPS
tags, nor an address in XMP, IPTC, a PNG text chunk or a comment. Only the colour profile and
the orientation (in an EXIF block that holds nothing else) are carried over, as viewers need
them to show the picture right.

Files are written before the database row and are never deleted here. If the caller's
transaction is rolled back afterwards, the files stay behind as orphans; that is harmless,
because a file is named by its content: a later upload of the same bytes reuses it, and a
sweep could drop files that no row refers to.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageSequence, JpegImagePlugin
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.image_headers import declared_size, sniff, webp_is_lossless
from storage.rows import AttachmentRow
from storage.sql import table_of
from workflow.errors import WorkflowError

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # Telegram bots cannot download larger files anyway.
# Decoding takes 3-4 bytes a pixel, so the pixel count, not the file size, bounds the memory a
# photo costs: a small file can declare a huge picture. 8192x6144 (50 MP) lets through the
# full-size photos of 48/50-megapixel phone cameras (most phones save 12 MP) and costs at most
# about 200 MB while a public copy is made. Checked from the file's header, before decoding.
MAX_PHOTO_PIXELS = 8192 * 6144

_MIB = 1024 * 1024

# Pillow names a JPEG that carries extra images (phones' HDR gain maps, depth maps) "MPO";
# it is still a JPEG to every viewer, so it is accepted and stored as one.
_PHOTO_FORMATS = {
    "JPEG": ("JPEG", "image/jpeg"),
    "MPO": ("JPEG", "image/jpeg"),
    "PNG": ("PNG", "image/png"),
    "WEBP": ("WEBP", "image/webp"),
    "GIF": ("GIF", "image/gif"),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")
# All a frame of the public copy keeps of what the decoder read: how to draw it.
_DRAWING_KEYS = ("transparency", "duration")


class MediaRefused(WorkflowError):
    """An upload that is not stored; code and params let the chat layer explain why."""

    code = "media_refused"


_ATTACHMENTS = table_of(AttachmentRow)
_INSERT_ATTACHMENT = insert(_ATTACHMENTS).returning(_ATTACHMENTS.c.id)


@dataclass(frozen=True, slots=True)
class PhotoInfo:
    """What validation learnt about a photo, so later steps need not decode it again."""

    mime_type: str
    width: int  # as encoded, before any EXIF orientation is applied
    height: int
    format: str  # the container: JPEG, PNG, WEBP or GIF


@dataclass(frozen=True, slots=True)
class _Stored:
    info: PhotoInfo
    sha256: str
    public_sha256: str


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    """A photo whose files are on disk, ready for its row (written in the turn's transaction)."""

    stored: _Stored
    size: int
    channel: str | None
    channel_file_id: str | None


class MediaStore:
    """Photos on the local disk under root, named by the SHA-256 of their bytes."""

    def __init__(
        self, root: Path, max_bytes: int = MAX_PHOTO_BYTES, max_pixels: int = MAX_PHOTO_PIXELS
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    # -- validation -------------------------------------------------------------------------

    def inspect_photo(self, data: bytes) -> PhotoInfo:
        """Accept only a complete JPEG, PNG, WEBP or GIF, so nothing else reaches a viewer."""
        size = len(data)
        if size == 0:
            raise MediaRefused("empty_file", "The file is empty.")
        # Checked before Pillow sees the bytes: an oversized upload is never parsed.
        if size > self.max_bytes:
            raise MediaRefused(
                "too_large",
                f"The file is {size / _MIB:.1f} MB; photos may be at most "
                f"{_limit_mb(self.max_bytes)} MB.",
                size=size,
                limit_mb=_limit_mb(self.max_bytes),
            )
        # Likewise the dimensions the header declares: a picture too big is never decoded.
        if declared := declared_size(data):
            self._check_pixels(*declared)
        detected: str | None = None
        try:
            with Image.open(io.BytesIO(data)) as im:
                detected = im.format
                if detected not in _PHOTO_FORMATS:
                    mime = Image.MIME.get(detected or "")
                    raise MediaRefused(
                        "not_an_image",
                        f"The file is a {detected} image; send a JPEG, PNG, WEBP or GIF photo.",
                        format=detected,
                        mime=mime,
                        reason="unsupported_format",
                    )
                width, height = im.size
                # An animation is decoded frame after frame into the public copy.
                frames = 1 if detected == "MPO" else getattr(im, "n_frames", 1)
                self._check_pixels(width, height, frames)
                im.verify()
            # verify() only checks structure (and does nothing for JPEG), so the image is also
            # decoded once; a truncated file fails here.
            with Image.open(io.BytesIO(data)) as im:
                if detected in ("JPEG", "MPO"):
                    # Decoding at 1/8 scale still reads every block but needs 64x less memory.
                    im.draft(None, (1, 1))
                im.load()
        except MediaRefused:
            raise
        except Image.DecompressionBombError as exc:
            raise self._too_many_pixels() from exc
        except Exception as exc:  # Pillow raises many types on hostile input.
            fmt: str | None
            if detected in _PHOTO_FORMATS:
                fmt, mime = _PHOTO_FORMATS[detected]
            else:
                fmt, mime = sniff(data)
            if fmt in _PHOTO_FORMATS:
                raise MediaRefused(
                    "not_an_image",
                    f"The {fmt} photo is damaged or incomplete and cannot be shown.",
                    format=fmt,
                    mime=mime,
                    reason="damaged",
                ) from exc
            what = f"a {fmt} file" if fmt else "not a picture"
            raise MediaRefused(
                "not_an_image",
                f"The file is {what}; send a JPEG, PNG, WEBP or GIF photo.",
                format=fmt,
                mime=mime,
                reason="unrecognised",
            ) from exc
        container, mime = _PHOTO_FORMATS[detected]
        return PhotoInfo(mime_type=mime, width=width, height=height, format=container)

    def _check_pixels(self, width: int, height: int, frames: int = 1) -> None:
        if width * height * frames > self.max_pixels:
            raise self._too_many_pixels(width, height, frames)

    def _too_many_pixels(
        self, width: int | None = None, height: int | None = None, frames: int = 1
    ) -> MediaRefused:
        """The picture's dimensions, not its file size, are what is too large."""
        limit_mp = _megapixels(self.max_pixels)
        if width is None or height is None:
            what, megapixels = "too many pixels", None
        else:
            megapixels = _megapixels(width * height * frames)
            in_frames = f" in {frames} frames" if frames > 1 else ""
            what = f"{width}x{height} pixels{in_frames} ({megapixels} megapixels)"
        return MediaRefused(
            "too_many_pixels",
            f"The picture has {what}; photos may have at most {limit_mp} megapixels.",
            width=width,
            height=height,
            frames=frames,
            megapixels=megapixels,
            limit_mp=limit_mp,
            max_pixels=self.max_pixels,
        )

    # -- the public copy --------------------------------------------------------------------

    def public_copy(self, data: bytes, info: PhotoInfo) -> bytes:
        """The photo encoded afresh from its pixels, so none of the upload's metadata survives.

        Where a photo was taken hides in many places (EXIF GPS, an address in XMP or IPTC,
        PNG text chunks, comments, a maker note, bytes after the image); rather than clean
        each, only the pixels, the colour profile and the orientation are carried over. A
        JPEG keeps its quantization tables and subsampling, so the copy looks the same.
        """
        try:
            with Image.open(io.BytesIO(data)) as im:
                params: dict[str, Any] = {}
                if orientation := _orientation(im):
                    exif = Image.Exif()
                    exif[ExifTags.Base.Orientation] = orientation
                    params["exif"] = exif.tobytes()
                if icc := im.info.get("icc_profile"):
                    params["icc_profile"] = icc
                if info.format == "JPEG":
                    # Only the primary image of an MPO is kept; its extra images are not shown.
                    self._check_pixels(*im.size)
                    frames = [_pixels_only(im)]
                    if not isinstance(im, JpegImagePlugin.JpegImageFile):
                        # inspect_photo found a JPEG (or MPO, its subclass) in these bytes.
                        raise TypeError(f"a JPEG photo opened as {type(im).__name__}")
                    params["qtables"] = im.quantization
                    params["subsampling"] = JpegImagePlugin.get_sampling(im)
                else:
                    frames = self._frames(im)
                    if len(frames) > 1:
                        params["save_all"] = True
                        params["append_images"] = frames[1:]
                        params["duration"] = [f.info.get("duration", 0) for f in frames]
                        params["loop"] = im.info.get("loop", 0)
                    if info.format == "WEBP":
                        params["lossless"] = webp_is_lossless(data)
                        params["quality"] = 100 if params["lossless"] else 90
            out = io.BytesIO()
            frames[0].save(out, info.format, **params)
            return out.getvalue()
        except Image.DecompressionBombError as exc:
            raise self._too_many_pixels() from exc
        except (MediaRefused, MemoryError):
            raise
        except Exception as exc:  # inspect_photo decoded it already; this is a surprise
            raise MediaRefused(
                "not_an_image",
                f"The {info.format} photo could not be prepared for viewing: {exc}",
                format=info.format,
                mime=info.mime_type,
                reason="damaged",
            ) from exc

    def _frames(self, im: Image.Image) -> list[Image.Image]:
        frames: list[Image.Image] = []
        for frame in ImageSequence.Iterator(im):
            # A GIF frame may grow the canvas; each frame is decoded at the canvas size.
            self._check_pixels(*frame.size, len(frames) + 1)
            frames.append(_pixels_only(frame))
        return frames

    # -- storage ----------------------------------------------------------------------------
    async def save_photo(
        self,
        session: AsyncSession,
        data: bytes,
        *,
        now: datetime,
        channel: str | None = None,
        channel_file_id: str | None = None,
    ) -> AttachmentRow:
        """Validate and store a photo, and add its row; the caller commits with its change.

        Nothing is written when the photo is refused. Files are written before the row; see
        the module docstring for why orphans after a rollback are acceptable.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        photo = await self.store_photo(data, channel=channel, channel_file_id=channel_file_id)
        return await self.add_photo_row(session, photo, now=now)

    async def store_photo(
        self, data: bytes, *, channel: str | None = None, channel_file_id: str | None = None
    ) -> StoredPhoto:
        """Validate the photo and write its files, outside any transaction (a turn does this
        before it opens one, so SQLite's writer is not held while Pillow decodes)."""
        # Decoding, hashing and writing block; they run off the event loop.
        stored = await asyncio.to_thread(self._store, data)
        return StoredPhoto(stored, len(data), channel, channel_file_id)

    async def add_photo_row(
        self, session: AsyncSession, photo: StoredPhoto, *, now: datetime
    ) -> AttachmentRow:
        """The row of a photo store_photo wrote; the caller commits with its change. One
        INSERT (no ORM flush); the row returned is a detached copy to read its values from."""
        stored = photo.stored
        values = {
            "kind": "photo", "mime_type": stored.info.mime_type, "size": photo.size,
            "sha256": stored.sha256, "public_sha256": stored.public_sha256,
            "width": stored.info.width, "height": stored.info.height, "channel": photo.channel,
            "channel_file_id": photo.channel_file_id, "created_at": now.astimezone(UTC),
        }  # fmt: skip
        row_id = (await session.execute(_INSERT_ATTACHMENT, values)).scalar_one()
        return AttachmentRow(id=row_id, **values)

    def _store(self, data: bytes) -> _Stored:
        info = self.inspect_photo(data)
        public = self.public_copy(data, info)
        sha = hashlib.sha256(data).hexdigest()
        public_sha = sha if public == data else hashlib.sha256(public).hexdigest()
        original = self.original_path(sha)
        _write_once(original, data)
        _write_once(
            self.public_path(public_sha), public, same_as=original if public_sha == sha else None
        )
        return _Stored(info=info, sha256=sha, public_sha256=public_sha)

    def original_path(self, sha256: str) -> Path:
        """Where the bytes as received live; they may contain the reporter's location."""
        return self._path("original", sha256)

    def public_path(self, sha256: str) -> Path:
        """Where the location-free copy lives; safe to send to anyone who may see the case."""
        return self._path("public", sha256)

    def _path(self, kind: str, sha256: str) -> Path:
        # The name may come from a database row; refuse anything that could escape root.
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
        return self.root / kind / sha256[:2] / sha256[2:4] / sha256

    async def read_public(self, row: AttachmentRow) -> bytes:
        """The bytes to send when a photo is shown; read off the event loop."""
        return await self.read_public_sha(row.public_sha256)

    async def read_public_sha(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.public_path(sha256).read_bytes)


def _limit_mb(max_bytes: int) -> int | float:
    mb = max_bytes / _MIB
    return int(mb) if mb.is_integer() else round(mb, 1)


def _write_once(path: Path, data: bytes, *, same_as: Path | None = None) -> None:
    """Create path atomically unless it exists; content addressing makes any copy equal."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two uploads of the same photo may race to create it.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        linked = False
        if same_as is not None:
            try:
                os.link(same_as, tmp)
                linked = True
            except OSError:  # no hard links on this file system: fall back to a copy
                pass
        if not linked:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                # Durable before it gets its final name, so a crash leaves no half file.
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        # Also covers rename() doing nothing when tmp and path are links to one file.
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the new directory entry; not possible on every platform, hence best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _megapixels(pixels: int) -> int | float:
    """Whole megapixels for photo-sized counts; two decimals for the tiny limits of tests."""
    return round(pixels / 1e6) if pixels >= 10_000_000 else round(pixels / 1e6, 2)


def _orientation(im: Image.Image) -> int | None:
    try:
        value = im.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # unreadable EXIF: the photo is shown as stored
        return None
    return value if isinstance(value, int) and 1 < value <= 8 else None


def _pixels_only(frame: Image.Image) -> Image.Image:
    """The frame's pixels and palette; the encoders would otherwise copy its info (comments,
    XMP, text chunks) into the new file."""
    clean = frame.copy()
    clean.info = {key: frame.info[key] for key in _DRAWING_KEYS if key in frame.info}
    return clean
