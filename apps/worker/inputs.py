"""Turning a job's stored input into what its task reads."""

from __future__ import annotations

from apps.worker.reading import read_document
from jobrelay.contract import JobInput, JobRecord
from jobrelay.files import FileStore
from jobrelay.inputs import DOCUMENT_FILE_TYPES, accepts

# A text task reads at most this much of an uploaded document; the models truncate far
# sooner (MiniLM reads 256 word pieces), so more would only cost memory.
_MAX_TEXT_CHARS = 200_000


class UnreadableInput(Exception):
    """The uploaded file is not what its task can read (say, a .txt that is not UTF-8)."""


async def materialize(record: JobRecord, files: FileStore) -> JobRecord:
    """`record` with a file input loaded: as text for text tasks (a PDF or an image read
    first, OCR where needed), as bytes for the others."""
    ref = record.input.file
    if ref is None:
        return record
    content = await files.read(ref)
    if not accepts(record.task).text:
        loaded = record.input.model_copy(update={"content": content})
        return record.model_copy(update={"input": loaded})
    name = ref.filename or "the file"
    if ref.content_type in DOCUMENT_FILE_TYPES:
        text = (await read_document(content)).markdown
    else:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableInput(f"{name} is not UTF-8 text") from exc
    if not text.strip():
        raise UnreadableInput(f"{name} has no text")
    return record.model_copy(update={"input": JobInput(text=text[:_MAX_TEXT_CHARS])})
