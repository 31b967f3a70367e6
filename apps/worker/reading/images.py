"""Uploaded images decoded with Pillow, checked against the pixel budget before decoding, and
handed to tesseract as plain grayscale PNG (one format it always reads, whatever came in)."""

from __future__ import annotations

import asyncio
import io
import warnings

from PIL import Image, UnidentifiedImageError

from apps.worker.reading.errors import DocumentProblem, DocumentRefused

# Pixels per image (or per TIFF page). 40 megapixels is an A4 page scanned at 600 dpi; its
# decoded grayscale copy is 40 MB. A header that claims more is refused before any decoding,
# so a small file declaring 100000 x 100000 pixels costs nothing.
MAX_PIXELS = 40_000_000
# Pages of a multi-page TIFF that are read; the limit for PDFs is in documents.py.
MAX_FRAMES = 20
# Longest side tesseract gets. Text larger than this is legible when scaled down, and the
# OCR time grows with the pixel count.
MAX_SIDE = 4000


def _frames(content: bytes) -> list[bytes]:
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its own limit raises) on huge images; the explicit
            # check below is what decides here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            frames = getattr(image, "n_frames", 1)
            if frames > MAX_FRAMES:
                raise DocumentRefused(
                    DocumentProblem.TOO_LARGE,
                    f"the image has {frames} pages; at most {MAX_FRAMES} are read",
                )
            pages = []
            for index in range(frames):
                image.seek(index)
                pages.append(_png(image))
            return pages
    except DocumentRefused:
        raise
    except UnidentifiedImageError:
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, "the file is not an image that can be decoded"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, f"the image could not be decoded: {exc}"
        ) from None
    except Image.DecompressionBombError as exc:
        raise DocumentRefused(DocumentProblem.TOO_LARGE, str(exc)) from None


def _png(image: Image.Image) -> bytes:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise DocumentRefused(
            DocumentProblem.TOO_LARGE,
            f"the image is {width} x {height} pixels; at most {MAX_PIXELS} pixels are read",
        )
    gray = image.convert("L")  # decodes; RGBA, palette and CMYK all become plain gray
    if max(gray.size) > MAX_SIDE:
        gray.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    gray.save(out, format="PNG", compress_level=1)
    return out.getvalue()


async def pages_as_png(content: bytes) -> list[bytes]:
    """Each page (frame) of the image as grayscale PNG; DocumentRefused if it cannot be."""
    # Decoding is CPU work that holds the GIL only in parts; in a thread the event loop keeps
    # answering the sidecar (and renewing leases) meanwhile.
    return await asyncio.to_thread(_frames, content)
