"""PDFs through poppler: the text layer where a page has one (pdftotext), OCR where it does
not (the page rendered by pdftoppm, then tesseract), so a text PDF is read exactly and a
scanned one is read at all."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from apps.worker.reading import ocr, processes
from apps.worker.reading.errors import DocumentProblem, DocumentRefused

# Pages a PDF may have. Counting pages is cheap whatever the count, so a 2,000-page file is
# refused before any page is read.
MAX_PAGES = 100
# Pages without a text layer that are OCRed (each takes seconds): a long scan is refused.
MAX_OCR_PAGES = 10
# A page whose text layer has fewer visible characters than this is treated as scanned: a
# scan often carries a page number or a stray mark as text.
_MIN_LAYER_CHARS = 16
# Longest side of a page rendered for OCR, in pixels: about 240 dpi on A4, where tesseract
# reads ordinary print well, and bounded however large the page's MediaBox claims to be.
_RENDER_SIDE = 2800
_INFO_SECONDS = 20.0
_TEXT_SECONDS = 60.0
_RENDER_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PdfPage:
    markdown: str
    ocr: bool  # read by OCR (no text layer)


async def read_pdf(content: bytes) -> list[PdfPage]:
    with tempfile.TemporaryDirectory(prefix="jobrelay-pdf-") as folder:
        path = Path(folder) / "document.pdf"
        path.write_bytes(content)
        pages = await _page_count(path)
        layer = await _text_layer(path, pages)
        out = []
        scanned = [i for i, text in enumerate(layer) if _visible(text) < _MIN_LAYER_CHARS]
        if len(scanned) > MAX_OCR_PAGES:
            raise DocumentRefused(
                DocumentProblem.TOO_LARGE,
                f"{len(scanned)} pages have no text layer; at most {MAX_OCR_PAGES} are OCRed",
            )
        for index, text in enumerate(layer):
            if index in scanned:
                png = await _render(path, index + 1)
                out.append(PdfPage(await ocr.page_markdown(png), ocr=True))
            else:
                out.append(PdfPage(layout_to_markdown(text), ocr=False))
        return out


async def _page_count(path: Path) -> int:
    finished = await processes.run(["pdfinfo", str(path)], _INFO_SECONDS)
    errors = finished.stderr.decode("utf-8", "replace")
    if finished.returncode != 0:
        if "password" in errors.lower():
            raise DocumentRefused(
                DocumentProblem.ENCRYPTED, "the PDF is encrypted and needs a password to open"
            )
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, f"not a readable PDF: {_last_line(errors)}"
        )
    match = re.search(r"^Pages:\s+(\d+)", finished.stdout.decode("utf-8", "replace"), re.M)
    if match is None or int(match.group(1)) == 0:
        raise DocumentRefused(DocumentProblem.UNREADABLE, "the PDF has no pages")
    pages = int(match.group(1))
    if pages > MAX_PAGES:
        raise DocumentRefused(
            DocumentProblem.TOO_LARGE, f"the PDF has {pages} pages; at most {MAX_PAGES} are read"
        )
    return pages


async def _text_layer(path: Path, pages: int) -> list[str]:
    args = ["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"]
    finished = await processes.run(args, _TEXT_SECONDS)
    if finished.returncode != 0:
        errors = finished.stderr.decode("utf-8", "replace")
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, f"the PDF's text could not be read: {_last_line(errors)}"
        )
    # pdftotext ends every page with a form feed.
    texts = finished.stdout.decode("utf-8", "replace").split("\f")
    return (texts + [""] * pages)[:pages]


async def _render(path: Path, page: int) -> bytes:
    args = [
        "pdftoppm",
        *("-f", str(page), "-l", str(page)),
        *("-scale-to", str(_RENDER_SIDE)),
        "-gray",
        "-png",
        "-singlefile",
        str(path),
    ]
    finished = await processes.run(args, _RENDER_SECONDS)
    if finished.returncode != 0 or not finished.stdout:
        errors = finished.stderr.decode("utf-8", "replace")
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, f"page {page} could not be rendered: {_last_line(errors)}"
        )
    return finished.stdout


def layout_to_markdown(text: str) -> str:
    """pdftotext's layout text as markdown: blank-line paragraphs kept, each line stripped of
    the indentation that markdown would read as code, and column gaps shown as ` | `."""
    lines = [re.sub(r" {3,}", " | ", line.strip()) for line in text.splitlines()]
    markdown = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", markdown).strip()


def _visible(text: str) -> int:
    return sum(1 for char in text if not char.isspace())


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
