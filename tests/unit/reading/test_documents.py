"""apps.worker.reading on the real engines (Debian's tesseract and poppler, which
`make setup` installs): the invoice read from every format, hostile documents refused with a
stable code, quickly, and without taking the process down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from apps.worker.reading import DocumentRefused, read_document
from apps.worker.reading.ocr import tsv_to_markdown
from apps.worker.reading.pdf import layout_to_markdown
from tests import documents


@pytest.mark.parametrize(
    "make",
    [
        lambda: documents.invoice("PNG"),
        lambda: documents.invoice("JPEG"),
        lambda: documents.invoice("TIFF"),
        lambda: documents.invoice("WEBP"),
        documents.scanned_invoice_pdf,
        documents.text_pdf,
    ],
    ids=["png", "jpeg", "tiff", "webp", "scanned-pdf", "text-pdf"],
)
def test_the_invoice_is_read_with_its_number_and_total(make: Callable[[], bytes]) -> None:
    document = asyncio.run(read_document(make()))
    assert documents.INVOICE_NUMBER in document.markdown
    assert documents.INVOICE_TOTAL in document.markdown
    assert document.pages == 1


def test_a_scanned_pdf_is_ocred_and_a_text_pdf_is_not() -> None:
    assert asyncio.run(read_document(documents.scanned_invoice_pdf())).ocr_pages == 1
    assert asyncio.run(read_document(documents.text_pdf())).ocr_pages == 0


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (documents.undecodable_png, "document_unreadable"),
        (documents.huge_png, "document_too_large"),
        (documents.many_pages_pdf, "document_too_large"),
        (documents.encrypted_pdf, "document_encrypted"),
        (documents.zip_named_pdf, "document_unreadable"),
    ],
    ids=["undecodable-image", "100000x100000-png", "2000-page-pdf", "encrypted-pdf", "zip"],
)
def test_hostile_documents_are_refused_with_a_stable_code_at_once(
    make: Callable[[], bytes], code: str
) -> None:
    content = make()
    started = time.monotonic()
    with pytest.raises(DocumentRefused) as refused:
        asyncio.run(read_document(content))
    assert refused.value.code == code
    assert time.monotonic() - started < 10  # refused from headers, not after reading it all


def test_a_blank_image_reads_as_no_text() -> None:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (400, 300), "white").save(out, format="PNG")
    document = asyncio.run(read_document(out.getvalue()))
    assert document.empty


def test_ocr_lines_and_paragraphs_become_markdown() -> None:
    columns = "level page_num block_num par_num line_num word_num left top width height conf text"
    header = columns.replace(" ", "\t")
    rows = [
        "5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t96\tInvoice",
        "5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t95\t42",
        "5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t91\tDue",
        "5\t1\t2\t1\t1\t1\t0\t0\t1\t1\t12\t~",  # a speck, dropped
        "5\t1\t3\t1\t1\t1\t0\t0\t1\t1\t90\tTotal",
    ]
    assert tsv_to_markdown("\n".join([header, *rows])) == "Invoice 42\nDue\n\nTotal"


def test_pdf_layout_keeps_columns_apart_and_drops_indentation() -> None:
    text = "      Item        Qty\n\n\n\n    Hinges       100  "
    assert layout_to_markdown(text) == "Item | Qty\n\nHinges | 100"
