"""Pictures made on the spot: solid-colour JPEG/PNG, and a detailed one to compare pixels."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def jpeg(color: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def png(color: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture with detail, so decoded pixels can be compared meaningfully."""
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    im.paste((200, 30, 30), (4, 4, size[0] // 2, size[1] // 2))
    return im


def encode(fmt: str, image: Image.Image | None = None, **params: object) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, fmt, **params)
    return out.getvalue()


def png_bytes(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG of any size, built without holding its pixels in memory."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = b"\x89PNG\r\n\x1a\n"
    return header + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
