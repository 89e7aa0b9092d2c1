"""What the first bytes of an upload say: the format it is and the size it declares.

Read without Pillow, so a refusal can name what was sent and a picture too big to decode is
refused before any of its pixels are allocated.
"""

from __future__ import annotations

import struct


def sniff(data: bytes) -> tuple[str | None, str | None]:
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


def webp_is_lossless(data: bytes) -> bool:
    """A lossless WEBP (a screenshot, say) stays lossless; its first image chunk tells."""
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8L"
        if kind == b"ANMF":  # an animation frame's image chunk follows its 16-byte header
            pos += 8 + 16
            continue
        (length,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + length + (length & 1)
    return False


def declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header of a JPEG, PNG, WEBP or GIF, without decoding it.

    None when the header cannot be read this way; Pillow's own reading is then checked.
    """
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack_from(">II", data, 16)
        if data.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack_from("<HH", data, 6)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:  # cut off inside the header
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":  # the canvas: 24-bit width-1 and height-1
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if kind == b"VP8L":  # 14-bit width-1 and height-1 after the signature byte
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":  # after the frame tag and start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


# Start-of-frame markers, which hold a JPEG's dimensions (not DHT, JPG and DAC among them).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or scan data before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return None
