"""Writing boards as they are painted: one file per grid, and optionally one PDF per township.

A county has thousands of grids: each board is written and dropped before the next is painted.
A township's PDF collects its pages in small batches (Pillow writes a PDF's pages in one call,
and appending one page at a time re-reads the whole file each time).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

FORMATS = ("pdf", "png")
PAGES_PER_APPEND = 10  # a page is ~4 MB in memory (Pillow keeps 1-bit images a byte a pixel)


class BoardFiles:
    """Boards come in township order (storage/grid_boards.py); close() writes what is held."""

    def __init__(self, out: Path, fmt: str, dpi: int, township_pdf: bool) -> None:
        self.out = out
        self.fmt = fmt
        self.dpi = dpi
        self.township_pdf = township_pdf
        self.boards = 0
        self.townships: list[Path] = []
        self._pages: list[Image.Image] = []
        self._township: Path | None = None
        self._started = False

    def path(self, grid_code: str) -> Path:
        return self.out / f"{grid_code}.{self.fmt}"

    def add(self, grid_code: str, township_code: str, image: Image.Image) -> None:
        if self.fmt == "pdf":
            image.save(self.path(grid_code), "PDF", resolution=self.dpi)
        else:
            image.save(self.path(grid_code), "PNG", dpi=(self.dpi, self.dpi), optimize=True)
        self.boards += 1
        if not self.township_pdf:
            return
        township = self.out / f"{township_code}.pdf"
        if township != self._township:
            self._flush()
            self._township, self._started = township, False
            self.townships.append(township)
        self._pages.append(image)
        if len(self._pages) >= PAGES_PER_APPEND:
            self._flush()

    def close(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self._pages or self._township is None:
            return
        first, *rest = self._pages
        # The first batch replaces a file of an earlier run; later ones append to it.
        first.save(
            self._township, "PDF", resolution=self.dpi, save_all=True, append_images=rest,
            append=self._started,
        )  # fmt: skip
        self._started = True
        # Pillow leaves each page's encoderinfo holding the list of all pages: a cycle that
        # would keep every batch's pixels until the garbage collector happens to run.
        for page in self._pages:
            page.encoderinfo = {}
        self._pages = []
