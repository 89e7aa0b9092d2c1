"""Reading printed QR boards back as a viewer shows them: PDF pages rendered by PDFium (the
renderer of Chrome's PDF viewer), and the links their codes hold, read by OpenCV's QR detector
(a real decoder, not our encoder run backwards)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pypdfium2
from PIL import Image


def decode(image: Image.Image) -> set[str]:
    """Every QR code's text on the image: the detector's several-codes search misses one of
    two now and then, so each half of the page is also read on its own."""
    pixels = np.array(image.convert("L"))
    detector = cv2.QRCodeDetector()
    found, texts, _points, _ = detector.detectAndDecodeMulti(pixels)
    seen = {text for text in texts if text} if found else set()
    middle = pixels.shape[1] // 2
    for half in (pixels[:, :middle], pixels[:, middle:]):
        text, _points, _ = detector.detectAndDecode(np.ascontiguousarray(half))
        if text:
            seen.add(text)
    return seen


def pdf_pages(path: Path, dpi: int = 200) -> list[Image.Image]:
    """Each page of a PDF as an image, and the page sizes in millimetres."""
    document = pypdfium2.PdfDocument(str(path))
    try:
        return [page.render(scale=dpi / 72).to_pil() for page in document]
    finally:
        document.close()


def page_sizes_mm(path: Path) -> list[tuple[int, int]]:
    document = pypdfium2.PdfDocument(str(path))
    try:
        return [
            (round(p.get_width() / 72 * 25.4), round(p.get_height() / 72 * 25.4)) for p in document
        ]
    finally:
        document.close()
