"""The photo store: what is accepted, what is refused, and that public copies hide location."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageChops, PngImagePlugin
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.media as media
from handlers.render import Renderer
from storage.db import session_factory
from storage.media import (
    MAX_PHOTO_BYTES,
    MAX_PHOTO_PIXELS,
    MediaRefused,
    MediaStore,
    PhotoInfo,
)
from storage.rows import AttachmentRow
from tests.support.images import encode, picture, png_bytes
from workflow.clock import ManualClock

GPS = ExifTags.IFD.GPSInfo
ORIENTATION = ExifTags.Base.Orientation
XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    b'exif:GPSLatitude="31,14.2N" exif:GPSLongitude="121,28.1E"/></rdf:RDF></x:xmpmeta>'
)
# Where a photo was taken, without the word GPS: what a photo app or editor writes.
CITY, STREET = b"Jiaxing", b"Xinhua Rd 12"
XMP_WITH_ADDRESS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    b'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    b'xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/" '
    b'photoshop:City="' + CITY + b'" Iptc4xmpCore:Location="' + STREET + b'"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def exif_with_gps() -> Image.Exif:
    """EXIF as a phone writes it: orientation and make in IFD0, a date, and a GPS IFD."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ExifTags.Base.Make] = "Shuoshi"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:11:23 09:00:00"
    gps = exif.get_ifd(GPS)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (31.0, 14.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (121.0, 28.0, 3.25)
    return exif


def jpeg_with_gps() -> bytes:
    return encode("JPEG", exif=exif_with_gps(), quality=90)


def exif_with_address() -> Image.Exif:
    exif = exif_with_gps()
    exif[ExifTags.Base.ImageDescription] = (STREET + b", " + CITY).decode()
    return exif


def with_segment(jpeg: bytes, marker: int, body: bytes) -> bytes:
    """The JPEG with one more segment (IPTC in APP13, a COM comment) after its start."""
    return jpeg[:2] + struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body + jpeg[2:]


def close_pixels(a: bytes, b: bytes) -> bool:
    """Same picture after a JPEG re-encode with the same tables: tiny rounding differences."""
    with Image.open(io.BytesIO(a)) as one, Image.open(io.BytesIO(b)) as two:
        if one.size != two.size:
            return False
        diff = ImageChops.difference(one.convert("RGB"), two.convert("RGB")).convert("L")
        return sum(i * n for i, n in enumerate(diff.histogram())) / (one.width * one.height) < 2


def metadata_of(data: bytes) -> dict[str, object]:
    """Everything a viewer can read besides pixels, colour profile and drawing hints."""
    with Image.open(io.BytesIO(data)) as im:
        info = {k: v for k, v in im.info.items() if k not in DRAWING_INFO}
        exif = {k: v for k, v in im.getexif().items() if k != ORIENTATION}
        text = dict(getattr(im, "text", {}) or {})
    return {"info": info, "exif": exif, "text": text}


# What Pillow reports about how to draw a picture; no place to hide an address in these.
DRAWING_INFO = {
    "icc_profile", "exif", "transparency", "duration", "loop", "background", "version",
    "dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "progressive",
    "progression", "adobe", "adobe_transform", "timestamp", "disposal", "blend", "bbox",
}  # fmt: skip


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").tobytes()


def exif_of(data: bytes, frame: int = 0) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as im:
        if frame:
            im.seek(frame)
        return im.getexif()


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def count_rows(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return await session.scalar(select(func.count()).select_from(AttachmentRow))


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


# -- accepted photos, on both databases ----------------------------------------------------


async def test_jpeg_stored_with_its_facts_and_a_location_free_public_copy(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    data = jpeg_with_gps()
    assert GPS in exif_of(data)  # the fixture really carries a location
    async with session_factory(engine)() as session:
        row = await store.save_photo(
            session, data, now=clock.now(), channel="telegram", channel_file_id="AgAD-1"
        )
        await session.commit()

    sha = hashlib.sha256(data).hexdigest()
    assert row.id is not None
    assert (row.kind, row.mime_type, row.size, row.sha256) == (
        "photo",
        "image/jpeg",
        len(data),
        sha,
    )
    assert (row.width, row.height) == (64, 48)
    assert (row.channel, row.channel_file_id) == ("telegram", "AgAD-1")
    assert row.created_at == clock.now() and row.created_at.tzinfo == UTC

    original = store.original_path(sha)
    assert original == store.root / "original" / sha[:2] / sha[2:4] / sha
    assert original.read_bytes() == data
    assert GPS in exif_of(original.read_bytes())  # the evidence is kept as received

    public = store.public_path(row.public_sha256).read_bytes()
    assert row.public_sha256 == hashlib.sha256(public).hexdigest() != sha
    assert await store.read_public(row) == public
    exif = exif_of(public)
    assert GPS not in exif and not exif.get_ifd(GPS)
    # Encoded afresh from the pixels: only the orientation is carried over.
    assert dict(exif) == {ORIENTATION: 6}
    assert close_pixels(public, data)
    longitude = [struct.pack(order + "II", 121, 1) for order in "<>"]
    assert any(value in data for value in longitude)
    assert not any(value in public for value in longitude)

    async with session_factory(engine)() as session:
        again = await session.get(AttachmentRow, row.id)
        assert again is not None
        assert (again.sha256, again.public_sha256, again.size) == (
            sha,
            row.public_sha256,
            len(data),
        )


async def test_png_public_copy_has_the_same_pixels(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    data = encode("PNG")
    async with session_factory(engine)() as session:
        row = await store.save_photo(session, data, now=clock.now())
        await session.commit()
    assert row.mime_type == "image/png"
    public = store.public_path(row.public_sha256).read_bytes()
    assert pixels(public) == pixels(data) and await store.read_public(row) == public
    assert store.original_path(row.sha256).read_bytes() == data


async def test_same_bytes_twice_give_two_rows_and_one_file(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    data = jpeg_with_gps()
    async with session_factory(engine)() as session:
        first = await store.save_photo(session, data, now=clock.now())
        clock.advance(minutes=1)
        second = await store.save_photo(session, data, now=clock.now())
        await session.commit()
    assert first.id != second.id
    assert (first.sha256, first.public_sha256) == (second.sha256, second.public_sha256)
    assert await count_rows(engine) == 2
    assert stored_files(store.root) == [
        store.original_path(first.sha256),
        store.public_path(first.public_sha256),
    ]


async def test_rolled_back_save_leaves_harmless_files_and_no_row(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    data = encode("GIF")
    async with session_factory(engine)() as session:
        row = await store.save_photo(session, data, now=clock.now())
        await session.rollback()
    assert await count_rows(engine) == 0
    # Documented behaviour: the content-addressed file stays, and a retry reuses it.
    assert store.original_path(row.sha256).read_bytes() == data


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: b"please fix the street light\n", id="text"),
        pytest.param(lambda: b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n", id="pdf"),
        pytest.param(lambda: jpeg_with_gps()[:-200], id="truncated-jpeg"),
        pytest.param(lambda: jpeg_with_gps()[:300], id="jpeg-cut-in-header"),
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: bytes(MAX_PHOTO_BYTES + 1), id="too-large"),
        pytest.param(
            lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), id="heic"
        ),
        pytest.param(lambda: encode("BMP"), id="bmp"),
    ],
)
async def test_refused_upload_writes_nothing(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock, make: Callable[[], bytes]
) -> None:
    async with session_factory(engine)() as session:
        with pytest.raises(MediaRefused):
            await store.save_photo(session, make(), now=clock.now())
        await session.commit()
    assert await count_rows(engine) == 0
    assert not store.root.exists() or stored_files(store.root) == []


# -- refusals: codes and params for the chat layer -----------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt", "mime", "reason"),
    [
        (b"please fix the street light\n", "TEXT", "text/plain", "unrecognised"),
        ("路灯坏了，请修理".encode(), "TEXT", "text/plain", "unrecognised"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF", "application/pdf", "unrecognised"),
        (
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
            "HEIC",
            "image/heic",
            "unrecognised",
        ),
        (b"\x00\x01\x02\x03\xfe\xfd" * 10, None, None, "unrecognised"),
    ],
)
def test_not_an_image_names_what_was_sent(
    store: MediaStore, data: bytes, fmt: str | None, mime: str | None, reason: str
) -> None:
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(data)
    assert refused.value.code == "not_an_image"
    assert refused.value.params["format"] == fmt
    assert refused.value.params["mime"] == mime
    assert refused.value.params["reason"] == reason
    assert "JPEG, PNG, WEBP or GIF" in str(refused.value)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_other_image_formats_are_refused_with_the_detected_format(
    store: MediaStore, fmt: str
) -> None:
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(encode(fmt))
    assert refused.value.code == "not_an_image"
    assert refused.value.params["format"] == fmt
    assert refused.value.params["reason"] == "unsupported_format"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(jpeg_with_gps()[:-200], id="jpeg-truncated-scan"),
        pytest.param(jpeg_with_gps()[:300], id="jpeg-truncated-header"),
        pytest.param(encode("PNG")[:-30], id="png-truncated"),
        pytest.param(encode("PNG")[:60] + b"\x00" + encode("PNG")[61:], id="png-bad-crc"),
    ],
)
def test_damaged_photos_are_refused(store: MediaStore, data: bytes) -> None:
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(data)
    assert refused.value.code == "not_an_image"
    assert refused.value.params["reason"] == "damaged"
    assert refused.value.params["format"] in ("JPEG", "PNG")


def test_empty_file_is_refused(store: MediaStore) -> None:
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(b"")
    assert refused.value.code == "empty_file"
    assert refused.value.params == {}


def test_too_large_is_refused_before_decoding(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an oversized upload must not reach Pillow")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(bytes(MAX_PHOTO_BYTES + 1))
    assert refused.value.code == "too_large"
    assert refused.value.params == {"size": MAX_PHOTO_BYTES + 1, "limit_mb": 20}
    assert "20 MB" in str(refused.value)


def test_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    data = encode("PNG")
    assert MediaStore(tmp_path, max_bytes=len(data)).inspect_photo(data).format == "PNG"
    with pytest.raises(MediaRefused) as refused:
        MediaStore(tmp_path, max_bytes=len(data) - 1).inspect_photo(data)
    assert refused.value.code == "too_large"


# A picture whose header declares 9000x9000 pixels: 236 KB as RGB, 10 KB as 1-bit PNG.
HUGE = (9000, 9000)


def huge_photo(fmt: str) -> bytes:
    """A small real photo whose header declares HUGE dimensions, as a bomb's does."""
    if fmt == "PNG":
        return png_bytes(*HUGE)
    params = {"exif": exif_with_gps()} if fmt == "WEBP" else {}  # EXIF makes it extended
    data = bytearray(encode(fmt, picture((30, 20)), **params))
    width, height = HUGE
    if fmt == "JPEG":
        sof = data.index(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, height, width)
    elif fmt == "GIF":
        struct.pack_into("<HH", data, 6, width, height)
    else:  # an extended WEBP header: 24-bit canvas width-1 and height-1
        assert data[12:16] == b"VP8X"
        data[24:27] = (width - 1).to_bytes(3, "little")
        data[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_too_many_pixels_are_refused_from_the_header_before_decoding(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    data = huge_photo(fmt)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a picture with too many pixels must not reach Pillow")

    monkeypatch.setattr(Image, "open", no_decoding)
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(data)
    assert refused.value.code == "too_many_pixels"
    assert refused.value.params == {
        "width": 9000,
        "height": 9000,
        "frames": 1,
        "megapixels": 81,
        "limit_mp": 50,
        "max_pixels": MAX_PHOTO_PIXELS,
    }


def test_a_9000_pixel_square_png_is_refused_with_its_dimensions(store: MediaStore) -> None:
    data = png_bytes(*HUGE)
    assert len(data) < 50 * 1024  # tiny file, 81 megapixels
    with pytest.raises(MediaRefused) as refused:
        store.inspect_photo(data)
    en, zh = Renderer("en").error(refused.value), Renderer("zh_CN").error(refused.value)
    assert "9000 × 9000" in en and "81 megapixels" in en and "at most 50 megapixels" in en
    assert "9000 × 9000" in zh and "8100 万像素" in zh and "5000 万像素" in zh
    assert "MB" not in en + zh


def test_a_photo_at_the_pixel_limit_is_accepted(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, max_pixels=64 * 48)
    data = encode("JPEG")
    assert store.inspect_photo(data).width == 64
    assert store.public_copy(data, store.inspect_photo(data))
    with pytest.raises(MediaRefused) as refused:
        MediaStore(tmp_path, max_pixels=64 * 48 - 1).inspect_photo(data)
    assert refused.value.params["width"] == 64 and refused.value.params["height"] == 48


def test_animation_frames_count_towards_the_pixel_limit(tmp_path: Path) -> None:
    frames = [picture(), picture().rotate(180), picture()]
    data = encode("GIF", frames[0], save_all=True, append_images=frames[1:], duration=100)
    assert MediaStore(tmp_path, max_pixels=3 * 64 * 48).inspect_photo(data).format == "GIF"
    with pytest.raises(MediaRefused) as refused:
        MediaStore(tmp_path, max_pixels=3 * 64 * 48 - 1).inspect_photo(data)
    assert refused.value.params["frames"] == 3
    assert "in 3 frames" in Renderer("en").error(refused.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_bomb_pillow_catches_is_refused_for_its_pixels_not_its_bytes(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A header our own reading misses: Pillow's bomb check is what stops it.
    data = encode("PNG", picture((100, 100)))
    info = store.inspect_photo(data)
    monkeypatch.setattr(media, "declared_size", lambda _: None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100 // 3)
    for call in (lambda: store.inspect_photo(data), lambda: store.public_copy(data, info)):
        with pytest.raises(MediaRefused) as refused:
            call()
        assert refused.value.code == "too_many_pixels"
        text = Renderer("en").error(refused.value)
        assert "too many pixels" in text and "50 megapixels" in text and "MB" not in text


# -- accepted formats and location removal per container -----------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_the_four_formats_are_accepted(store: MediaStore, fmt: str, mime: str) -> None:
    info = store.inspect_photo(encode(fmt, picture((30, 20))))
    assert info == PhotoInfo(mime_type=mime, width=30, height=20, format=fmt)


def test_animated_gif_stays_animated_frame_for_frame(store: MediaStore) -> None:
    frames = [picture(), picture().rotate(180)]
    data = encode("GIF", frames[0], save_all=True, append_images=frames[1:], duration=100)
    info = store.inspect_photo(data)
    assert info.mime_type == "image/gif"
    public = store.public_copy(data, info)
    with Image.open(io.BytesIO(data)) as before, Image.open(io.BytesIO(public)) as after:
        assert after.n_frames == before.n_frames == 2
        for frame in range(2):
            before.seek(frame)
            after.seek(frame)
            assert after.convert("RGB").tobytes() == before.convert("RGB").tobytes()
            assert after.info["duration"] == 100


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_lose_gps_but_keep_orientation_and_pixels(store: MediaStore, fmt: str) -> None:
    lossless = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(fmt, exif=exif_with_gps(), **lossless)
    assert GPS in exif_of(data)
    public = store.public_copy(data, store.inspect_photo(data))
    assert dict(exif_of(public)) == {ORIENTATION: 6}
    assert pixels(public) == pixels(data)  # a lossless WEBP stays lossless
    assert store.inspect_photo(public).format == fmt


def test_jpeg_keeps_no_location_in_xmp_iptc_comments_or_exif(store: MediaStore) -> None:
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0e\x1c\x02\x5a\x00\x07" + CITY
    data = encode("JPEG", exif=exif_with_address(), xmp=XMP_WITH_ADDRESS, comment=STREET)
    data = with_segment(data, 0xED, iptc + b"\x00")  # APP13: IPTC city
    with Image.open(io.BytesIO(data)) as im:  # the fixture really says where
        assert STREET in im.info["xmp"] and im.info["comment"] == STREET
    public = store.public_copy(data, store.inspect_photo(data))
    assert CITY not in public and STREET not in public
    assert metadata_of(public) == {"info": {}, "exif": {}, "text": {}}
    assert exif_of(public)[ORIENTATION] == 6
    assert close_pixels(public, data)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_xmp_with_gps_is_removed(store: MediaStore, fmt: str) -> None:
    data = encode(fmt, exif=exif_with_gps(), xmp=XMP_WITH_GPS)
    public = store.public_copy(data, store.inspect_photo(data))
    assert b"GPSLatitude" not in public and b"GPSLongitude" not in public
    assert exif_of(public)[ORIENTATION] == 6
    assert close_pixels(public, data)


def test_webp_keeps_no_address_in_xmp_or_exif(store: MediaStore) -> None:
    data = encode("WEBP", exif=exif_with_address(), xmp=XMP_WITH_ADDRESS, lossless=True)
    assert STREET in data
    public = store.public_copy(data, store.inspect_photo(data))
    assert CITY not in public and STREET not in public
    assert metadata_of(public) == {"info": {}, "exif": {}, "text": {}}
    assert pixels(public) == pixels(data)


def test_png_keeps_no_text_xmp_or_exif_chunks(store: MediaStore) -> None:
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP_WITH_ADDRESS.decode(), zip=True)
    text.add_text("Comment", "street light, " + STREET.decode())
    text.add_text("Location", CITY.decode(), zip=True)
    data = encode("PNG", pnginfo=text, exif=exif_with_address())  # the EXIF goes in eXIf
    assert b"eXIf" in data and b"iTXt" in data and b"tEXt" in data and b"zTXt" in data
    public = store.public_copy(data, store.inspect_photo(data))
    for chunk in (b"iTXt", b"tEXt", b"zTXt"):
        assert chunk not in public
    assert dict(exif_of(public)) == {ORIENTATION: 6}  # the eXIf chunk holds nothing else
    assert CITY not in public and STREET not in public
    assert metadata_of(public) == {"info": {}, "exif": {}, "text": {}}
    assert pixels(public) == pixels(data)


def test_gif_keeps_no_comment(store: MediaStore) -> None:
    data = encode("GIF", comment=b"street light, " + STREET)
    public = store.public_copy(data, store.inspect_photo(data))
    assert STREET not in public and pixels(public) == pixels(data)


def test_mpo_public_copy_is_its_primary_image_without_location(store: MediaStore) -> None:
    # Phones store HDR gain maps and depth maps as extra images; each repeats the EXIF.
    data = encode("MPO", save_all=True, append_images=[picture((32, 24))], exif=exif_with_gps())
    assert GPS in exif_of(data, frame=1)
    info = store.inspect_photo(data)
    assert info == PhotoInfo(mime_type="image/jpeg", width=64, height=48, format="JPEG")
    public = store.public_copy(data, info)
    with Image.open(io.BytesIO(public)) as im:
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1
        assert dict(im.getexif()) == {ORIENTATION: 6}
    assert close_pixels(public, data)


def test_data_after_the_jpeg_end_is_not_published(store: MediaStore) -> None:
    plain = encode("JPEG")
    data = plain + b"\x00\x00\x00\x18ftypmp42 motion photo video with a location"
    public = store.public_copy(data, store.inspect_photo(data))
    assert b"location" not in public and close_pixels(public, plain)


def test_the_public_copy_of_the_same_upload_is_the_same_file(store: MediaStore) -> None:
    # Content addressing keeps one public file for repeated uploads only if encoding is stable.
    for fmt in ("JPEG", "PNG", "WEBP", "GIF"):
        data = encode(fmt, exif=exif_with_gps()) if fmt != "GIF" else encode(fmt)
        info = store.inspect_photo(data)
        assert store.public_copy(data, info) == store.public_copy(data, info)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_unreadable_exif_is_not_published(store: MediaStore) -> None:
    data = bytearray(jpeg_with_gps())
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 4 : tiff + 8] = b"\xff\xff\x00\x00"  # IFD0 offset far outside the segment
    data = bytes(data)
    public = store.public_copy(data, store.inspect_photo(data))
    assert b"Shuoshi" not in public and ORIENTATION not in exif_of(public)
    assert close_pixels(public, data)


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../etc/passwd", "AB" * 32, "ab" * 31, "g" * 64])
def test_paths_accept_only_sha256_hex(store: MediaStore, bad: str) -> None:
    with pytest.raises(ValueError):
        store.public_path(bad)
    with pytest.raises(ValueError):
        store.original_path(bad)


async def test_writes_leave_no_temporary_files(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    async with session_factory(engine)() as session:
        for fmt in ("JPEG", "PNG", "WEBP"):
            await store.save_photo(session, encode(fmt, exif=exif_with_gps()), now=clock.now())
        await session.commit()
    names = [p.name for p in stored_files(store.root)]
    assert len(names) == 6 and not [n for n in names if n.endswith(".tmp")]


async def test_naive_time_is_rejected(engine: AsyncEngine, store: MediaStore) -> None:
    async with session_factory(engine)() as session:
        with pytest.raises(ValueError):
            await store.save_photo(session, encode("PNG"), now=datetime(2026, 11, 23, 9))
