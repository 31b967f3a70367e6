"""One entry point: an uploaded document's bytes to markdown, whatever engine reads them."""

from __future__ import annotations

from dataclasses import dataclass

from apps.worker.reading import images, ocr, pdf
from apps.worker.reading.errors import DocumentProblem, DocumentRefused
from jobrelay.inputs import sniff_document


@dataclass(frozen=True, slots=True)
class Document:
    markdown: str  # the text, paragraphs apart; `## Page n` headings when there are pages
    pages: int
    ocr_pages: int  # pages read by OCR (every page of an image; scanned pages of a PDF)

    @property
    def empty(self) -> bool:
        return not self.markdown.strip()


async def read_document(content: bytes) -> Document:
    """The document's text as markdown; DocumentRefused when it cannot be read.

    The type is what the bytes say (intake checked them against the declared type already),
    so a renamed file is read as what it is, or refused.
    """
    kind = sniff_document(content[:16])
    if kind == "application/pdf":
        pages = await pdf.read_pdf(content)
        texts = [page.markdown for page in pages]
        return Document(_join(texts), len(pages), sum(page.ocr for page in pages))
    if kind is None:
        raise DocumentRefused(DocumentProblem.UNREADABLE, "not a PDF or an image jobrelay reads")
    frames = await images.pages_as_png(content)
    texts = [await ocr.page_markdown(png) for png in frames]
    return Document(_join(texts), len(frames), len(frames))


def _join(pages: list[str]) -> str:
    if len(pages) == 1:
        return pages[0]
    return "\n\n".join(
        f"## Page {number}\n\n{text or '*(no text)*'}" for number, text in enumerate(pages, 1)
    )
