"""tesseract OCR of one page, as markdown paragraphs in reading order.

tesseract's TSV output numbers every word by block, paragraph and line in the order its
layout analysis reads them; paragraphs become markdown paragraphs and lines stay lines, so an
invoice's "Total: 1,234.50" stays on one line, next to nothing else.
"""

from __future__ import annotations

import csv
import io

from apps.worker.reading import processes
from apps.worker.reading.errors import DocumentProblem, DocumentRefused

# Seconds one page may take. A dense A4 page takes a few seconds on one thread.
PAGE_SECONDS = 60.0
# Words tesseract is less sure of than this (0-100) are noise more often than text: specks
# and lines of a scan read as punctuation.
MIN_CONFIDENCE = 30.0


async def page_markdown(png: bytes, languages: str = "eng") -> str:
    """The text of one page image (PNG bytes) as markdown; empty when it holds none."""
    args = ["tesseract", "stdin", "stdout", "-l", languages, "--psm", "3", "tsv"]
    finished = await processes.run(args, PAGE_SECONDS, stdin=png)
    if finished.returncode != 0:
        reason = finished.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise DocumentRefused(
            DocumentProblem.UNREADABLE, f"OCR failed: {' '.join(reason) or 'tesseract failed'}"
        )
    return tsv_to_markdown(finished.stdout.decode("utf-8", "replace"))


def tsv_to_markdown(tsv: str) -> str:
    """Words of tesseract's TSV, joined into lines and paragraphs."""
    paragraphs: dict[tuple[int, int, int], dict[int, list[str]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if row.get("level") != "5" or not word or float(row.get("conf") or -1) < MIN_CONFIDENCE:
            continue
        key = (int(row["page_num"]), int(row["block_num"]), int(row["par_num"]))
        paragraphs.setdefault(key, {}).setdefault(int(row["line_num"]), []).append(word)
    blocks = [
        "\n".join(" ".join(words) for words in lines.values()) for lines in paragraphs.values()
    ]
    return "\n\n".join(block for block in blocks if block.strip())
