"""Documents made for the tests: an invoice drawn with Pillow (as PNG, JPEG, TIFF, WebP and a
scanned PDF), a PDF with a text layer, and the hostile ones a reader must refuse. All are
made here, from nothing but Pillow and pypdf, so no test needs a fixture file."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

INVOICE_NUMBER = "INV-2024-0042"
INVOICE_TOTAL = "1,234.50"
INVOICE_LINES = (
    "ACME Supplies Ltd.",
    "12 Harbour Road, Bristol",
    "",
    f"Invoice number: {INVOICE_NUMBER}",
    "Date: 2024-03-15",
    "Bill to: Northwind Traders",
    "",
    "Item                 Qty      Price",
    "Steel brackets        40     600.00",
    "Hinges               100     500.00",
    "Delivery               1     134.50",
    "",
    f"Total due: EUR {INVOICE_TOTAL}",
)


def invoice_image(width: int = 1000, height: int = 700) -> Image.Image:
    """The invoice, black on white, in Pillow's bundled font (no system font needed)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    y = 40
    for line in INVOICE_LINES:
        draw.text((60, y), line, fill="black", font=font)
        y += 46 if line else 24
    return image


def invoice(fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    invoice_image().save(out, format=fmt)
    return out.getvalue()


def scanned_invoice_pdf() -> bytes:
    """The invoice as a scanner makes it: one page that is only an image, no text layer."""
    out = io.BytesIO()
    invoice_image().save(out, format="PDF", resolution=150)
    return out.getvalue()


def text_pdf(lines: tuple[str, ...] = INVOICE_LINES) -> bytes:
    """A one-page PDF whose text is a real text layer (Helvetica), as office software makes."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "50 780 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _pdf(objects)


def _pdf(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def many_pages_pdf(pages: int = 2000) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf() -> bytes:
    """The text PDF locked with a user password: it cannot be opened without it."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf())))
    # A test document's made-up password, not a credential.
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")  # noqa: S106
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zip_named_pdf() -> bytes:
    """A ZIP archive, to be sent as application/pdf."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("invoice.txt", "not a pdf")
    return out.getvalue()


def undecodable_png() -> bytes:
    """PNG's signature and then noise: it sniffs as PNG and decodes as nothing."""
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def huge_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes whose header declares `width` x `height` pixels (a pixel bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
