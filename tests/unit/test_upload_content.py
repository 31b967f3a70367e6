"""jobrelay.inputs.ContentCheck: an upload is the type its bytes say, not its header."""

from __future__ import annotations

import pytest

from jobrelay.inputs import ContentCheck, sniff_image

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def _check(declared: str, *chunks: bytes) -> str | None:
    check = ContentCheck(declared)
    for chunk in chunks:
        wrong = check.feed(chunk)
        if wrong:
            return wrong
    return check.feed(b"", final=True)


def test_a_real_png_declared_as_png_passes() -> None:
    assert _check("image/png", PNG[:5], PNG[5:]) is None  # magic split across chunks


@pytest.mark.parametrize(
    ("declared", "body"),
    [
        ("image/png", b"MZ\x90\x00 an executable"),
        ("image/jpeg", PNG),
        ("text/plain", PNG),
        ("text/plain", b"\xff\xfe not utf-8"),
        ("application/json", b'{"a": "\0"}'),
    ],
)
def test_bytes_that_contradict_the_declared_type_are_refused(declared: str, body: bytes) -> None:
    assert _check(declared, body) is not None


def test_utf8_split_across_chunks_is_still_text() -> None:
    text = "naïve café".encode()
    assert _check("text/plain", text[:3], text[3:]) is None


@pytest.mark.parametrize(
    ("head", "kind"),
    [(b"GIF89a....", "image/gif"), (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"), (b"hello", None)],
)
def test_image_types_are_told_by_their_magic_bytes(head: bytes, kind: str | None) -> None:
    assert sniff_image(head) == kind


@pytest.mark.parametrize(
    ("declared", "body"),
    [
        ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        ("image/tiff", b"II*\x00\x08\x00\x00\x00"),
        ("image/tiff", b"MM\x00*\x00\x00\x00\x08"),
    ],
)
def test_documents_declared_as_what_they_are_pass(declared: str, body: bytes) -> None:
    assert _check(declared, body) is None


def test_a_zip_declared_as_a_pdf_is_refused_at_submit() -> None:
    wrong = _check("application/pdf", b"PK\x03\x04\x14\x00\x00\x00 an archive")
    assert wrong is not None
    assert "not application/pdf" in wrong
