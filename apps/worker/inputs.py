"""Turning a job's stored input into what its task reads."""

from __future__ import annotations

from jobrelay.contract import JobInput, JobRecord
from jobrelay.files import FileStore
from jobrelay.inputs import accepts

# A text task reads at most this much of an uploaded document; the models truncate far
# sooner (MiniLM reads 256 word pieces), so more would only cost memory.
_MAX_TEXT_CHARS = 200_000


class UnreadableInput(Exception):
    """The uploaded file is not what its task can read (say, a .txt that is not UTF-8)."""


async def materialize(record: JobRecord, files: FileStore) -> JobRecord:
    """`record` with a file input loaded: as text for text tasks, as bytes for the others."""
    ref = record.input.file
    if ref is None:
        return record
    content = await files.read(ref)
    if accepts(record.task).text:
        try:
            text = content.decode("utf-8")[:_MAX_TEXT_CHARS]
        except UnicodeDecodeError as exc:
            raise UnreadableInput(f"{ref.filename or 'the file'} is not UTF-8 text") from exc
        if not text.strip():
            raise UnreadableInput(f"{ref.filename or 'the file'} has no text")
        return record.model_copy(update={"input": JobInput(text=text)})
    loaded = record.input.model_copy(update={"content": content})
    return record.model_copy(update={"input": loaded})
