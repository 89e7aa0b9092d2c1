"""The photo store: what is accepted, what is refused, and that public copies hide location."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

import storage.media as media
from storage.db import session_factory
from storage.media import MAX_PHOTO_BYTES, MediaRefused, MediaStore, PhotoInfo
from storage.rows import AttachmentRow
from workflow.clock import ManualClock

GPS = ExifTags.IFD.GPSInfo
ORIENTATION = ExifTags.Base.Orientation
XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
    b'exif:GPSLatitude="31,14.2N" exif:GPSLongitude="121,28.1E"/></rdf:RDF></x:xmpmeta>'
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


def picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture with detail, so decoded pixels can be compared meaningfully."""
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    im.paste((200, 30, 30), (4, 4, size[0] // 2, size[1] // 2))
    return im


def encode(fmt: str, image: Image.Image | None = None, **params: object) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, fmt, **params)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    return encode("JPEG", exif=exif_with_gps(), quality=90)


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
    assert exif[ORIENTATION] == 6 and exif[ExifTags.Base.Make] == "Shuoshi"
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal].startswith("2026")
    # Edited in place, not re-encoded: same length, same pixels, coordinates wiped.
    assert len(public) == len(data) and pixels(public) == pixels(data)
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


async def test_png_without_location_is_public_as_is(
    engine: AsyncEngine, store: MediaStore, clock: ManualClock
) -> None:
    data = encode("PNG")
    async with session_factory(engine)() as session:
        row = await store.save_photo(session, data, now=clock.now())
        await session.commit()
    assert row.mime_type == "image/png" and row.public_sha256 == row.sha256
    assert store.public_path(row.sha256).read_bytes() == data
    assert store.original_path(row.sha256).read_bytes() == data
    assert await store.read_public(row) == data


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


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("factor", [1.5, 3])
def test_decompression_bombs_are_refused(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch, factor: float
) -> None:
    data = encode("PNG", picture((100, 100)))
    info = store.inspect_photo(data)
    # Between 1x and 2x the limit Pillow only warns; above 2x it raises. Both are refused.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 / factor))
    for call in (lambda: store.inspect_photo(data), lambda: store.strip_location(data, info)):
        with pytest.raises(MediaRefused) as refused:
            call()
        assert refused.value.code == "too_large"
        assert refused.value.params["max_pixels"] == int(100 * 100 / factor)


# -- accepted formats and location removal per container -----------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_the_four_formats_are_accepted(store: MediaStore, fmt: str, mime: str) -> None:
    info = store.inspect_photo(encode(fmt, picture((30, 20))))
    assert info == PhotoInfo(mime_type=mime, width=30, height=20, format=fmt)


def test_animated_gif_is_accepted_and_public_as_is(store: MediaStore) -> None:
    frames = [picture(), picture().rotate(180)]
    data = encode("GIF", frames[0], save_all=True, append_images=frames[1:], duration=100)
    info = store.inspect_photo(data)
    assert info.mime_type == "image/gif"
    assert store.strip_location(data, info) == data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_lose_gps_but_keep_orientation_and_pixels(store: MediaStore, fmt: str) -> None:
    lossless = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(fmt, exif=exif_with_gps(), **lossless)
    assert GPS in exif_of(data)
    public = store.strip_location(data, store.inspect_photo(data))
    exif = exif_of(public)
    assert GPS not in exif and exif[ORIENTATION] == 6
    assert pixels(public) == pixels(data)
    assert store.inspect_photo(public).format == fmt


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_xmp_with_gps_is_removed(store: MediaStore, fmt: str) -> None:
    data = encode(fmt, exif=exif_with_gps(), xmp=XMP_WITH_GPS)
    public = store.strip_location(data, store.inspect_photo(data))
    assert b"GPSLatitude" not in public and b"GPSLongitude" not in public
    assert exif_of(public)[ORIENTATION] == 6
    assert pixels(public) == pixels(data)


def test_png_text_chunks_with_location_are_dropped(store: MediaStore) -> None:
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP_WITH_GPS.decode(), zip=True)
    text.add_text("Comment", "street light, Xinhua Rd")
    data = encode("PNG", pnginfo=text)
    public = store.strip_location(data, store.inspect_photo(data))
    with Image.open(io.BytesIO(public)) as im:
        assert "xmp" not in im.info and im.info["Comment"] == "street light, Xinhua Rd"
    assert pixels(public) == pixels(data)


def test_mpo_is_a_jpeg_and_every_image_in_it_is_cleaned(store: MediaStore) -> None:
    # Phones store HDR gain maps and depth maps as extra images; each repeats the EXIF.
    data = encode("MPO", save_all=True, append_images=[picture((32, 24))], exif=exif_with_gps())
    assert GPS in exif_of(data, frame=1)
    info = store.inspect_photo(data)
    assert info == PhotoInfo(mime_type="image/jpeg", width=64, height=48, format="JPEG")
    public = store.strip_location(data, info)
    with Image.open(io.BytesIO(public)) as im:
        assert im.format == "MPO" and im.n_frames == 2  # the image index still points right
        for frame in range(2):
            im.seek(frame)
            assert GPS not in im.getexif() and im.getexif()[ORIENTATION] == 6
            im.load()
    assert len(public) == len(data)


def test_data_after_the_jpeg_end_is_not_published(store: MediaStore) -> None:
    plain = encode("JPEG")
    data = plain + b"\x00\x00\x00\x18ftypmp42 motion photo video with a location"
    public = store.strip_location(data, store.inspect_photo(data))
    assert public == plain


def test_unparseable_container_falls_back_to_a_clean_reencode(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jpeg_with_gps()
    info = store.inspect_photo(data)

    def broken(_: bytes) -> bytes:
        raise media._Malformed("pretend the markers make no sense")

    monkeypatch.setitem(media._STRIPPERS, "JPEG", broken)
    public = store.strip_location(data, info)
    exif = exif_of(public)
    assert GPS not in exif and exif[ORIENTATION] == 6
    assert ExifTags.Base.Make not in exif  # only orientation survives a re-encode
    assert store.inspect_photo(public).width == 64


def test_a_stripper_that_misses_gps_is_caught_by_the_check(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = jpeg_with_gps()
    info = store.inspect_photo(data)
    monkeypatch.setitem(media._STRIPPERS, "JPEG", lambda raw: raw)
    public = store.strip_location(data, info)
    assert GPS not in exif_of(public) and exif_of(public)[ORIENTATION] == 6


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_unreadable_exif_is_wiped_rather_than_published(store: MediaStore) -> None:
    data = bytearray(jpeg_with_gps())
    tiff = data.index(b"Exif\x00\x00") + 6
    data[tiff + 4 : tiff + 8] = b"\xff\xff\x00\x00"  # IFD0 offset far outside the segment
    data = bytes(data)
    public = store.strip_location(data, store.inspect_photo(data))
    assert b"Shuoshi" not in public and len(public) == len(data)
    assert pixels(public) == pixels(data)


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
