"""Content-addressed photo store: validates uploads and keeps a location-free public copy.

Every photo is kept twice under its SHA-256: the original, exactly as received (evidence), and
a public copy with location metadata removed (what other residents, cadres and departments
see). Photos from chat apps usually carry no EXIF at all, so the two copies are normally the
same bytes and share one file on disk through a hard link.

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
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AttachmentRow
from workflow.errors import WorkflowError

MAX_PHOTO_BYTES = 20 * 1024 * 1024  # Telegram bots cannot download larger files anyway.

_MIB = 1024 * 1024
_GPS_IFD = int(ExifTags.IFD.GPSInfo)  # 0x8825

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


class MediaRefused(WorkflowError):
    """An upload that is not stored; code and params let the chat layer explain why."""

    code = "media_refused"


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


class MediaStore:
    """Photos on the local disk under root, named by the SHA-256 of their bytes."""

    def __init__(self, root: Path, max_bytes: int = MAX_PHOTO_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

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
                self._check_pixels(width, height, size)
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
            raise self._too_many_pixels(None, size) from exc
        except Exception as exc:  # Pillow raises many types on hostile input.
            if detected in _PHOTO_FORMATS:
                fmt, mime = _PHOTO_FORMATS[detected]
            else:
                fmt, mime = _sniff(data)
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

    def _check_pixels(self, width: int | None, height: int | None, size: int) -> None:
        """Refuse what Pillow would warn about: a small file can decode to gigabytes."""
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and width is not None and height is not None:
            if width * height > limit:
                raise self._too_many_pixels(width * height, size)

    def _too_many_pixels(self, pixels: int | None, size: int) -> MediaRefused:
        limit = Image.MAX_IMAGE_PIXELS
        counted = f"{pixels / 1e6:.0f} megapixels" if pixels else "too many pixels"
        return MediaRefused(
            "too_large",
            f"The photo has {counted}; at most {(limit or 0) / 1e6:.0f} megapixels are accepted.",
            size=size,
            limit_mb=_limit_mb(self.max_bytes),
            pixels=pixels,
            max_pixels=limit,
        )

    # -- location removal -------------------------------------------------------------------

    def strip_location(self, data: bytes, info: PhotoInfo) -> bytes:
        """A copy without GPS metadata, so a public photo does not reveal where it was taken.

        Metadata is edited in place rather than re-encoded, so pixels, orientation and the
        rest of the EXIF survive bit for bit, and a photo without location comes back
        unchanged (public sha == original sha). Only when the container cannot be parsed is
        the image re-encoded, keeping just its orientation and colour profile.
        """
        try:
            try:
                public = _STRIPPERS[info.format](data)
                if self._location_free(public, info):
                    return public
            except _Malformed:
                pass
            public = self._reencode(data, info)
            if self._location_free(public, info):
                return public
        except Image.DecompressionBombError as exc:
            raise self._too_many_pixels(None, len(data)) from exc
        raise MediaRefused(
            "not_an_image",
            "The location could not be removed from the photo, so it cannot be shared.",
            format=info.format,
            mime=info.mime_type,
            reason="location_not_removable",
        )

    def _location_free(self, public: bytes, info: PhotoInfo) -> bool:
        """Re-read the result as viewers will, so a gap in our own parsing cannot leak."""
        try:
            with Image.open(io.BytesIO(public)) as im:
                if _PHOTO_FORMATS.get(im.format or "", ("",))[0] != info.format:
                    return False
                self._check_pixels(*im.size, len(public))
                frames = getattr(im, "n_frames", 1) if im.format == "MPO" else 1
                for frame in range(frames):
                    if frame:
                        im.seek(frame)
                    if _GPS_IFD in im.getexif():
                        return False
                    xmp = im.info.get("xmp") or b""
                    if b"GPS" in (xmp.encode() if isinstance(xmp, str) else xmp):
                        return False
        except (MediaRefused, Image.DecompressionBombError):
            raise
        except Exception:
            return False
        return True

    def _reencode(self, data: bytes, info: PhotoInfo) -> bytes:
        """Last resort for metadata we cannot edit safely: new pixels, orientation only."""
        with Image.open(io.BytesIO(data)) as im:
            self._check_pixels(*im.size, len(data))
            params: dict[str, Any] = {}
            try:
                orientation = im.getexif().get(ExifTags.Base.Orientation)
            except Exception:  # the EXIF is what we could not parse; lose it
                orientation = None
            if orientation:
                exif = Image.Exif()
                exif[ExifTags.Base.Orientation] = orientation
                params["exif"] = exif.tobytes()
            if icc := im.info.get("icc_profile"):
                params["icc_profile"] = icc
            animated = bool(getattr(im, "is_animated", False))
            out = io.BytesIO()
            if info.format == "JPEG":
                # Only the primary image of an MPO is kept; its extra images are not needed.
                im.save(out, "JPEG", quality="keep", **params)
            elif info.format == "WEBP":
                im.save(out, "WEBP", save_all=animated, quality=90, **params)
            else:
                im.save(out, info.format, save_all=animated, **params)
            return out.getvalue()

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
        # Decoding, hashing and writing block; they run off the event loop.
        stored = await asyncio.to_thread(self._store, data)
        row = AttachmentRow(
            kind="photo",
            mime_type=stored.info.mime_type,
            size=len(data),
            sha256=stored.sha256,
            public_sha256=stored.public_sha256,
            width=stored.info.width,
            height=stored.info.height,
            channel=channel,
            channel_file_id=channel_file_id,
            created_at=now.astimezone(UTC),
        )
        session.add(row)
        await session.flush()
        return row

    def _store(self, data: bytes) -> _Stored:
        info = self.inspect_photo(data)
        public = self.strip_location(data, info)
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


def _sniff(data: bytes) -> tuple[str | None, str | None]:
    """Name what residents commonly send instead of a photo, for a helpful refusal."""
    head = data[:64]
    # A photo cut off before its header ends is not recognised by Pillow; still name it.
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF", "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    if head.startswith(b"%PDF-"):
        return "PDF", "application/pdf"
    if head[4:8] == b"ftyp":
        brands = {head[i : i + 4] for i in range(8, min(len(head), 32), 4)}
        if brands & {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}:
            return "HEIC", "image/heic"
        if brands & {b"avif", b"avis"}:
            return "AVIF", "image/avif"
        if brands & {b"mif1", b"msf1"}:
            return "HEIF", "image/heif"
        if b"qt  " in brands:
            return "MOV", "video/quicktime"
        return "MP4", "video/mp4"
    if head.startswith(b"PK\x03\x04"):
        return "ZIP", "application/zip"
    sample = data[:4096]
    if b"\x00" not in sample:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the sample's end is still text.
            if exc.start < len(sample) - 3:
                return None, None
        return "TEXT", "text/plain"
    return None, None


# -- in-place metadata surgery --------------------------------------------------------------


class _Malformed(Exception):
    """A container we cannot walk safely; the photo is re-encoded instead."""


# Bytes per value of each TIFF field type, to find a GPS tag's out-of-line data.
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_TIFF_TYPE_SIZES |= {13: 4, 16: 8, 17: 8, 18: 8}
_XMP_IDS = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_MAX_TEXT = 8 * _MIB


def _tiff_drop_gps(buf: bytearray, start: int, end: int) -> bool:
    """Unlink and zero the GPS IFD of the TIFF in buf[start:end]; True if there was one.

    Nothing moves: the entry is removed from IFD0 by shifting the entries after it and the
    GPS data is overwritten with zeros, so every other offset in the file (maker notes,
    thumbnails, an MPO's image index) stays valid.
    """
    if end - start < 8:
        raise _Malformed("TIFF header too short")
    order = bytes(buf[start : start + 2])
    if order not in (b"II", b"MM"):
        raise _Malformed("bad TIFF byte order")
    endian = "<" if order == b"II" else ">"

    def read(fmt: str, offset: int) -> int:
        width = struct.calcsize(fmt)
        if offset < 0 or start + offset + width > end:
            raise _Malformed("TIFF offset out of range")
        return struct.unpack_from(endian + fmt, buf, start + offset)[0]

    if read("H", 2) != 42:
        raise _Malformed("not a TIFF header")
    ifd0 = read("I", 4)
    count = read("H", ifd0)
    entries = ifd0 + 2
    read("I", entries + 12 * count)  # the next-IFD pointer must be inside too
    for index in range(count):
        entry = entries + 12 * index
        if read("H", entry) == _GPS_IFD:
            break
    else:
        return False
    if read("H", entry + 2) not in (4, 13) or read("I", entry + 4) != 1:
        raise _Malformed("odd GPS IFD pointer")
    _zero_ifd(buf, start, end, read, read("I", entry + 8))
    tail = start + entries + 12 * count + 4
    buf[start + entry : tail - 12] = buf[start + entry + 12 : tail]
    buf[tail - 12 : tail] = bytes(12)
    struct.pack_into(endian + "H", buf, start + ifd0, count - 1)
    return True


def _zero_ifd(
    buf: bytearray, start: int, end: int, read: Callable[[str, int], int], ifd: int
) -> None:
    """Overwrite an IFD and the values it points to, so no coordinate is left in the file."""
    try:
        count = read("H", ifd)
    except _Malformed:
        return  # a dangling pointer: there is nothing to wipe, unlinking is enough
    for index in range(count):
        entry = ifd + 2 + 12 * index
        try:
            size = _TIFF_TYPE_SIZES.get(read("H", entry + 2), 0) * read("I", entry + 4)
            if size > 4:
                value = read("I", entry + 8)
                if start + value + size <= end:
                    buf[start + value : start + value + size] = bytes(size)
        except _Malformed:
            break
    block_end = min(end, start + ifd + 2 + 12 * count + 4)
    buf[start + ifd : block_end] = bytes(block_end - start - ifd)


def _strip_jpeg(data: bytes) -> bytes:
    """Clean every image in the file: an MPO's extra images carry their own EXIF."""
    buf = bytearray(data)
    pos = 0
    while buf[pos : pos + 2] == b"\xff\xd8":
        pos = _clean_jpeg_image(buf, pos)
    if pos == 0:
        raise _Malformed("no JPEG start marker")
    # Bytes after the last image (a motion photo's video, say) are no part of the picture and
    # may hold their own location, so the public copy ends with the images.
    del buf[pos:]
    return bytes(buf)


def _clean_jpeg_image(buf: bytearray, start: int) -> int:
    """Clean the APP1 segments of the image starting at start; returns where it ends."""
    n = len(buf)
    i = start + 2
    while True:
        if i >= n or buf[i] != 0xFF:
            raise _Malformed("expected a JPEG marker")
        while i < n and buf[i] == 0xFF:  # fill bytes may precede a marker
            i += 1
        if i >= n:
            raise _Malformed("truncated JPEG")
        marker = buf[i]
        i += 1
        if marker == 0xD9:  # EOI
            return i
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        if i + 2 > n:
            raise _Malformed("truncated JPEG")
        length = (buf[i] << 8) | buf[i + 1]
        if length < 2 or i + length > n:
            raise _Malformed("bad JPEG segment length")
        body, i = i + 2, i + length
        if marker == 0xE1:
            _clean_app1(buf, body, i)
        elif marker == 0xDA:  # SOS: entropy-coded data follows until the next real marker
            i = _skip_entropy(buf, i)


def _clean_app1(buf: bytearray, body: int, end: int) -> None:
    if buf[body : body + 5] == b"Exif\x00":
        try:
            _tiff_drop_gps(buf, body + 6, end)
        except _Malformed:
            # EXIF we cannot read may still hold a location: wipe it, same length.
            buf[body:end] = bytes(end - body)
    elif buf.startswith(_XMP_IDS, body) and b"GPS" in buf[body:end]:
        # Zeroed rather than removed: removing would move an MPO's extra images.
        buf[body:end] = bytes(end - body)


def _skip_entropy(buf: bytearray, i: int) -> int:
    n = len(buf)
    while True:
        k = buf.find(b"\xff", i)
        if k < 0 or k + 1 >= n:
            raise _Malformed("truncated JPEG scan")
        following = buf[k + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte or restart marker
            i = k + 2
        elif following == 0xFF:
            i = k + 1
        else:
            return k


def _strip_png(data: bytes) -> bytes:
    """Drop location chunks; PNG chunks hold no offsets, so removing them is safe."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise _Malformed("not a PNG")
    out = bytearray(data[:8])
    pos, n = 8, len(data)
    while True:
        if pos + 12 > n:
            raise _Malformed("truncated PNG")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        body, end = pos + 8, pos + 8 + length
        if end + 4 > n:
            raise _Malformed("truncated PNG chunk")
        chunk = data[pos : end + 4]
        pos = end + 4
        if kind == b"eXIf":
            payload = bytearray(data[body:end])
            skip = 6 if payload.startswith(b"Exif\x00\x00") else 0
            try:
                if _tiff_drop_gps(payload, skip, len(payload)):
                    chunk = _png_chunk(kind, bytes(payload))
            except _Malformed:
                continue
        elif kind in (b"tEXt", b"zTXt", b"iTXt") and _png_text_has_location(kind, data[body:end]):
            continue
        out += chunk
        if kind == b"IEND":
            # Anything after IEND is no part of the image; see _strip_jpeg.
            return bytes(out)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_text_has_location(kind: bytes, body: bytes) -> bool:
    """True for text chunks holding GPS (or that we cannot read, so cannot clear)."""
    keyword, _, rest = body.partition(b"\x00")
    try:
        if kind == b"zTXt":
            text = _inflate(rest[1:])
        elif kind == b"iTXt":
            compressed, text = rest[0], rest[2:].split(b"\x00", 2)[2]
            if compressed:
                text = _inflate(text)
        else:
            text = rest
        keyword = keyword.lower()
        # Pillow and ImageMagick read EXIF from these text chunks too.
        if keyword in (b"exif", b"raw profile type exif", b"raw profile type app1"):
            if keyword != b"exif":
                text = bytes.fromhex("".join(text.decode("ascii").split("\n")[3:]))
            raw = bytearray(text)
            skip = 6 if raw.startswith(b"Exif\x00\x00") else 0
            return _tiff_drop_gps(raw, skip, len(raw))
    except (IndexError, ValueError, zlib.error, _Malformed):
        return True
    return b"GPS" in text


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, _MAX_TEXT)
    if inflater.unconsumed_tail:
        raise ValueError("text chunk too large to check")
    return text


def _strip_webp(data: bytes) -> bytes:
    """Clean the EXIF chunk in place and drop an XMP chunk that holds GPS."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _Malformed("not a WEBP")
    riff_end = 8 + struct.unpack_from("<I", data, 4)[0]
    if riff_end > len(data):
        raise _Malformed("truncated WEBP")
    out = bytearray(data[:12])
    pos, cleared_flags = 12, 0
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise _Malformed("truncated WEBP chunk header")
        kind = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        end = pos + 8 + size + (size & 1)  # chunks are padded to an even length
        if end > riff_end:
            raise _Malformed("truncated WEBP chunk")
        chunk = bytearray(data[pos:end])
        pos = end
        if kind == b"EXIF":
            skip = 8 + (6 if chunk[8:14] == b"Exif\x00\x00" else 0)
            try:
                _tiff_drop_gps(chunk, skip, 8 + size)
            except _Malformed:
                cleared_flags |= 0x08
                continue
        elif kind == b"XMP " and b"GPS" in chunk:
            cleared_flags |= 0x04
            continue
        out += chunk
    if cleared_flags and out[12:16] == b"VP8X":
        out[20] &= ~cleared_flags & 0xFF  # the extended header announces EXIF/XMP chunks
    struct.pack_into("<I", out, 4, len(out) - 8)
    return bytes(out)


def _strip_gif(data: bytes) -> bytes:
    """GIF has no EXIF; a GPS-bearing XMP extension fails the check and is re-encoded."""
    return data


_STRIPPERS: dict[str, Callable[[bytes], bytes]] = {
    "JPEG": _strip_jpeg,
    "PNG": _strip_png,
    "WEBP": _strip_webp,
    "GIF": _strip_gif,
}
