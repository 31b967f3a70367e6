"""How fast and how right the offline document readers are (apps/worker/reading), on the
invoice that tests/documents.py draws, in every format the reader takes."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps.worker.reading import read_document
from tests import documents

FORMATS: dict[str, Callable[[], bytes]] = {
    "PNG image, 1000 x 700": lambda: documents.invoice("PNG"),
    "JPEG image": lambda: documents.invoice("JPEG"),
    "TIFF image": lambda: documents.invoice("TIFF"),
    "WebP image": lambda: documents.invoice("WEBP"),
    "scanned PDF (image only)": documents.scanned_invoice_pdf,
    "PDF with a text layer": documents.text_pdf,
}


@dataclass(frozen=True, slots=True)
class Reading:
    what: str
    seconds: float  # median of three reads
    ocr_pages: int
    found: bool  # the invoice number and the total are in the text read


def readings() -> list[Reading]:
    out = []
    for what, make in FORMATS.items():
        content = make()
        times, document = [], None
        for _ in range(3):
            started = time.perf_counter()
            document = asyncio.run(read_document(content))
            times.append(time.perf_counter() - started)
        assert document is not None
        found = (
            documents.INVOICE_NUMBER in document.markdown
            and documents.INVOICE_TOTAL in document.markdown
        )
        out.append(Reading(what, statistics.median(times), document.ocr_pages, found))
    return out


def tesseract_threads() -> dict[str, float]:
    """Seconds for tesseract alone on the PNG invoice, with OMP_THREAD_LIMIT=1 (what the
    worker sets) and with OpenMP left to take every core (the engine's default)."""
    with tempfile.TemporaryDirectory() as folder:
        image = Path(folder) / "invoice.png"
        image.write_bytes(documents.invoice("PNG"))
        results = {}
        for label, limit in (("OMP_THREAD_LIMIT=1", "1"), ("OpenMP default", None)):
            env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
            if limit:
                env["OMP_THREAD_LIMIT"] = limit
            times = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run(  # noqa: S603 (our own argv, never a shell)
                    ["/usr/bin/tesseract", str(image), "stdout"],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                times.append(time.perf_counter() - started)
            results[label] = statistics.median(times)
        return results
