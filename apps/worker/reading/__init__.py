"""Documents to text, offline: images through tesseract OCR, PDFs through poppler.

`read_document` turns an uploaded image (PNG, JPEG, TIFF, WebP) or PDF into markdown: the
text it holds, in reading order, paragraphs apart, one `## Page n` section per PDF page.
Every engine runs as a child process with a time and memory cap (apps/worker/reading/
processes.py), so a hostile file costs one job a stable error code, never the worker.
"""

from apps.worker.reading.documents import Document, read_document
from apps.worker.reading.errors import DocumentRefused

__all__ = ["Document", "DocumentRefused", "read_document"]
