"""Which font draws the boards: the one configured, else a Chinese font Debian installs.

Pillow draws text into the image (the PDF is that image), so a board is only as readable as
its font. Chinese names need a CJK font; without one, a board with Chinese on it is refused
with the way out instead of printing empty boxes.
"""

from __future__ import annotations

from pathlib import Path

# Looked for in this order when no font is configured (apt packages in brackets).
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # fonts-wqy-zenhei
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),  # fonts-arphic-uming
)


class FontMissing(Exception):
    """A board's text needs a font with more than Latin letters, and none was found."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def find_font(configured: Path | None) -> Path | None:
    """The configured font (which must exist: FileNotFoundError), else the first installed
    CJK font, else None (Pillow's default font: Latin text only)."""
    if configured is not None:
        if not configured.is_file():
            raise FileNotFoundError(configured)
        return configured
    return next((path for path in CJK_FONTS if path.is_file()), None)
