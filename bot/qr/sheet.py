"""One grid's board as an A4 image: its names, the QR codes and their links, drawn with Pillow.

The texts come from templates/qr.j2 (gettext); the organisation's names in the locale's
language. Chinese needs a font that has it (fonts-wqy-zenhei on Debian); Pillow's own font
draws only Latin text, so a board that needs more without such a font is refused with the
way out (bot/qr/fonts.py), never printed as empty boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from bot.qr.fonts import FontMissing
from bot.qr.links import make_qr

if TYPE_CHECKING:
    import segno

A4_MM = (210.0, 297.0)
MARGIN_MM = 15.0
BLACK, WHITE = 0, 255
CAPTIONS_MM = 20  # caption and link under a code

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class BoardTexts:
    """Everything written on one board, already in the reader's language."""

    title: str  # the grid's name
    places: str  # township · village
    heading: str  # what to do: scan to report
    intro: str
    web_caption: str
    web_link: str
    telegram_caption: str | None
    telegram_link: str | None
    footer: str  # the grid's code, for whoever files the boards


class SheetPainter:
    """Draws boards at a resolution, with one font file (or Pillow's Latin-only default)."""

    def __init__(self, font_path: Path | None, dpi: int = 200) -> None:
        self.font_path = font_path
        self.dpi = dpi
        self.size = (self.px(A4_MM[0]), self.px(A4_MM[1]))

    def px(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def font(self, size_px: int) -> Font:
        return _font(self.font_path, max(size_px, 6))

    def paint(self, texts: BoardTexts) -> Image.Image:
        """The board as a black-and-white image (what a printer prints anyway; small files)."""
        if self.font_path is None:
            needy = [t for t in _all_texts(texts) if not _latin(t)]
            if needy:
                raise FontMissing(needy[0])
        image = Image.new("L", self.size, WHITE)
        draw = ImageDraw.Draw(image)
        width = self.size[0] - 2 * self.px(MARGIN_MM)
        y = self.px(MARGIN_MM)
        y = self._line(draw, texts.title, y, self.px(14), width)
        y = self._line(draw, texts.places, y + self.px(3), self.px(7), width)
        y += self.px(5)
        rule = self.px(MARGIN_MM)
        draw.line([(rule, y), (self.size[0] - rule, y)], fill=BLACK, width=max(1, self.px(0.6)))
        y = self._line(draw, texts.heading, y + self.px(7), self.px(12), width)
        for line in self._wrap(texts.intro, self.font(self.px(5)), width):
            y = self._line(draw, line, y + self.px(2), self.px(5), width)
        y += self.px(8)
        codes = [(texts.web_caption, texts.web_link)]
        if texts.telegram_link and texts.telegram_caption:
            codes.append((texts.telegram_caption, texts.telegram_link))
        # One code: as large as the page allows; two: side by side, each half the width.
        gap = self.px(10)
        cell = (width - gap * (len(codes) - 1)) // len(codes)
        side = min(cell, self.px(140))
        left = (self.size[0] - (side * len(codes) + gap * (len(codes) - 1))) // 2
        footer_size = self.px(4)
        footer_top = self.size[1] - self.px(MARGIN_MM) - footer_size
        # The codes in the middle of what is left (a third above, two below: eye height).
        spare = footer_top - y - side - self.px(CAPTIONS_MM)
        y += max(0, spare // 3)
        for index, (caption, link) in enumerate(codes):
            x = left + index * (side + gap)
            image.paste(_qr_image(make_qr(link), side), (x, y))
            below = self._line(draw, caption, y + side + self.px(3), self.px(6), side, x)
            self._line(draw, link, below + self.px(2), self.px(3.6), side, x)
        self._line(draw, texts.footer, footer_top, footer_size, width)
        return image.convert("1", dither=Image.Dither.NONE)

    def _line(
        self,
        draw: ImageDraw.ImageDraw,
        text: str,
        top: int,
        size_px: int,
        width: int,
        left: int | None = None,
    ) -> int:
        """Centre one line in [left, left + width), smaller until it fits; the next line's top."""
        font = self.font(size_px)
        while draw.textlength(text, font=font) > width and size_px > 8:
            size_px = int(size_px * 0.9)
            font = self.font(size_px)
        start = self.px(MARGIN_MM) if left is None else left
        x = start + (width - draw.textlength(text, font=font)) / 2
        draw.text((x, top), text, font=font, fill=BLACK)
        return top + round(size_px * 1.25)

    @staticmethod
    def _wrap(text: str, font: Font, width: int) -> list[str]:
        """Lines that fit: at spaces where the text has them, else anywhere (Chinese)."""
        words = text.split(" ") if " " in text else list(text)
        joiner = " " if " " in text else ""
        lines: list[str] = []
        current = ""
        for word in words:
            candidate = current + joiner + word if current else word
            if current and font.getlength(candidate) > width:
                lines.append(current)
                current = word
            else:
                current = candidate
        return [*lines, current] if current else lines


def _all_texts(texts: BoardTexts) -> list[str]:
    return [t for t in vars(texts).values() if t]


def _latin(text: str) -> bool:
    """What Pillow's own font can draw: Latin-1 (English names, "·")."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@lru_cache(maxsize=32)  # a font object holds MBs; names that must shrink to fit vary the size
def _font(path: Path | None, size: int) -> Font:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(path), size)


def _qr_image(code: segno.QRCode, side: int) -> Image.Image:
    """The code's modules (quiet zone included) scaled to whole pixels, centred in side px."""
    rows = list(code.matrix_iter(scale=1, border=4))
    modules = len(rows)
    small = Image.new("L", (modules, modules), WHITE)
    small.putdata([BLACK if dark else WHITE for row in rows for dark in row])
    scale = max(1, side // modules)
    big = small.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
    square = Image.new("L", (side, side), WHITE)
    offset = (side - big.size[0]) // 2
    square.paste(big, (offset, offset))
    return square
