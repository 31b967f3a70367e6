"""Which inputs each task takes: text, and which uploaded file types.

Intake refuses what a task cannot take (415 for a file type, 422 for a missing file), so a
worker only ever meets inputs it can read.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

# Documents read as UTF-8 text by the text tasks.
TEXT_FILE_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
IMAGE_FILE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
# Documents the worker reads offline (apps/worker/reading): OCR for images and scanned pages,
# the text layer for other PDFs. The text tasks take them too: read first, then the task.
DOCUMENT_FILE_TYPES = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/tiff", "image/webp"}
)


@dataclass(frozen=True, slots=True)
class Accepts:
    text: bool  # takes `input.text`
    file_types: frozenset[str]  # takes an uploaded file of these media types
    required: bool = True  # needs an input at all (chat's input is in its messages)
    # Longest `input.text`, in characters. What the local models read is far shorter
    # (embedders truncate at 512 tokens), so a longer text only costs memory and broker
    # bandwidth; summaries and extraction read long documents, so they get more.
    max_text_chars: int = 20_000

    def describe(self) -> str:
        if not self.file_types:
            return "text only"
        kinds = sorted(self.file_types)
        return ("text or " if self.text else "") + "a file of type " + ", ".join(kinds)


_TEXT_TASK = Accepts(text=True, file_types=TEXT_FILE_TYPES | DOCUMENT_FILE_TYPES)
_LONG_TEXT_TASK = Accepts(
    text=True, file_types=TEXT_FILE_TYPES | DOCUMENT_FILE_TYPES, max_text_chars=200_000
)

ACCEPTS: dict[str, Accepts] = {
    "classify": _TEXT_TASK,
    "embed": Accepts(text=True, file_types=TEXT_FILE_TYPES),
    "summarize": _LONG_TEXT_TASK,
    "extract": _LONG_TEXT_TASK,
    "chat": Accepts(text=True, file_types=frozenset(), required=False, max_text_chars=100_000),
    "describe_image": Accepts(text=False, file_types=IMAGE_FILE_TYPES),
    "read_document": Accepts(text=False, file_types=DOCUMENT_FILE_TYPES),
}


def accepts(task: str) -> Accepts:
    return ACCEPTS.get(task, _TEXT_TASK)


def media_type(content_type: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`."""
    return content_type.split(";", 1)[0].strip().lower()


# What each image type's bytes start with; a file is of the type its bytes say, whatever
# the part's Content-Type header claims.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
SNIFF_BYTES = 16


def sniff_image(head: bytes) -> str | None:
    """The image type the first bytes of a file show, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def sniff_document(head: bytes) -> str | None:
    """The document type (PDF or image) the first bytes of a file show, or None."""
    # A PDF's header may follow a few bytes of junk, which readers accept; within the sniffed
    # head is enough for what real files carry.
    if b"%PDF-" in head:
        return "application/pdf"
    return sniff_image(head)


@dataclass
class ContentCheck:
    """Checks an upload's bytes, as they stream in, against the type it was declared as:
    an image must start with that image type's magic bytes, a text document must be UTF-8
    without NUL bytes. A renamed executable or a polyglot never reaches a worker."""

    declared: str
    head: bytearray = field(default_factory=bytearray)
    _decoder: codecs.BufferedIncrementalDecoder | None = None

    def __post_init__(self) -> None:
        if self.declared in TEXT_FILE_TYPES:
            decoder = codecs.getincrementaldecoder("utf-8")()
            assert isinstance(decoder, codecs.BufferedIncrementalDecoder)
            self._decoder = decoder

    def feed(self, data: bytes, final: bool = False) -> str | None:
        """None while the bytes fit the declared type; else what is wrong."""
        if len(self.head) < SNIFF_BYTES:
            self.head.extend(data[: SNIFF_BYTES - len(self.head)])
        if self._decoder is not None:
            if b"\0" in data:
                return f"the file is not {self.declared}: it holds NUL bytes"
            try:
                self._decoder.decode(data, final)
            except UnicodeDecodeError:
                return f"the file is not {self.declared}: it is not UTF-8 text"
        elif final and self.declared in IMAGE_FILE_TYPES | DOCUMENT_FILE_TYPES:
            found = sniff_document(bytes(self.head))
            if found != self.declared:
                what = found or "not a PDF or an image"
                return f"the file is {what}, not {self.declared} as declared"
        return None
