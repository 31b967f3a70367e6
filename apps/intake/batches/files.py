"""OpenAI-style files in the state store: uploaded batch inputs and written batch outputs.

A file's bytes are chunks of FILE_CHUNK_BYTES under `file:{file_id}:{n}` (jobrelay.files),
its object under `oafile:{file_id}`. Nothing here holds a whole file: an upload is stored as
it streams in (apps/intake/uploads.py), lines are read a chunk at a time, and an output file
is written a chunk at a time as its lines are made.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal, TypeVar

from fastapi import Request

from apps.intake.batches.shapes import StoredFile, new_file_id, now
from apps.intake.uploads import read_form
from jobrelay import keys
from jobrelay.constants import FILE_CHUNK_BYTES
from jobrelay.errors import ApiError
from jobrelay.files import FileStore
from jobrelay.state import State

# Batch files live as long as a batch can (its 24 h window) and a good while after, for
# the client to fetch the output: OpenAI keeps them until deleted; jobrelay for 30 days.
FILE_TTL_SECONDS = 30 * 24 * 3600
# Lines whose jobs are looked up together when a batch is walked or finalized: one bulk read.
WINDOW_LINES = 256

T = TypeVar("T")


async def windows(items: AsyncIterable[T], size: int = WINDOW_LINES) -> AsyncIterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), as they come."""
    window: list[T] = []
    async for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


class BatchFiles:
    def __init__(self, state: State, max_bytes: int) -> None:
        self._state = state
        self._max_bytes = max_bytes

    async def upload(self, request: Request, tenant: str) -> StoredFile:
        """`POST /v1/files` (multipart: `purpose`, `file`), stored as it streams in."""
        file_id = new_file_id()
        key = keys.file(file_id)
        form = await read_form(
            request, FileStore(self._state), key, self._max_bytes, FILE_TTL_SECONDS, lambda _: None
        )
        ref = form.file
        purpose = form.fields.get("purpose")
        if ref is None or purpose != "batch":
            if ref is not None:
                await FileStore(self._state).delete(ref)
            if ref is None:
                raise ApiError(422, "file_required", "the form has no file in the field 'file'")
            raise ApiError(400, "invalid_purpose", f"purpose must be 'batch', not {purpose!r}")
        stored = StoredFile(
            id=file_id,
            bytes=ref.size,
            created_at=now(),
            filename=ref.filename or "input.jsonl",
            purpose="batch",
            tenant=tenant,
            chunks=ref.chunks,
            lines=await self._count_lines(key, ref.chunks),
        )
        await self._state.put(keys.openai_file(file_id), stored.model_dump_json(), FILE_TTL_SECONDS)
        return stored

    async def _count_lines(self, key: str, chunks: int) -> int:
        """Non-blank lines (as `lines` reads them), a chunk at a time."""
        count, open_text = 0, False  # open_text: the line still open has text so far
        for index in range(chunks):
            pieces = (await self._chunk(key, index)).split(b"\n")
            for i, piece in enumerate(pieces):
                has_text = bool(piece.strip()) or (i == 0 and open_text)
                if i < len(pieces) - 1:
                    count += has_text
                else:
                    open_text = has_text
        return count + open_text

    async def get(self, file_id: str, tenant: str) -> StoredFile | None:
        """The tenant's file; None for an unknown id or another tenant's file."""
        item = await self._state.get(keys.openai_file(file_id))
        if item is None:
            return None
        stored = StoredFile.model_validate_json(item.data)
        return stored if stored.tenant == tenant else None

    async def _chunk(self, key: str, index: int) -> bytes:
        item = await self._state.get(keys.file_chunk(key, index))
        if item is None:
            raise ApiError(410, "file_expired", f"part of {key} is gone")
        return item.data

    async def content(self, stored: StoredFile) -> AsyncIterator[bytes]:
        for index in range(stored.chunks):
            yield await self._chunk(keys.file(stored.id), index)

    async def lines(
        self, stored: StoredFile, first_line: int, offset: int
    ) -> AsyncIterator[tuple[int, bytes, int]]:
        """(line number, text, offset after it) from `offset` (where `first_line` starts),
        blank lines skipped, one chunk read at a time."""
        key, number = keys.file(stored.id), first_line
        index, skip = divmod(offset, FILE_CHUNK_BYTES)
        pending, start = bytearray(), offset
        while index < stored.chunks:
            pending += (await self._chunk(key, index))[skip:]
            index, skip = index + 1, 0
            while (end := pending.find(b"\n")) >= 0:
                text = bytes(pending[:end])
                del pending[: end + 1]
                start += end + 1
                if text.strip():
                    yield number, text, start
                number += 1
        if bytes(pending).strip():
            yield number, bytes(pending), start + len(pending)


class OutputFile:
    """A batch's output or error file, written a chunk at a time as lines are added."""

    def __init__(self, state: State, tenant: str, kind: Literal["output", "errors"]) -> None:
        self._state = state
        self.id = new_file_id()
        self._tenant = tenant
        self._name = f"batch_{kind}.jsonl"
        self._buffer = bytearray()
        self._chunks = 0
        self._size = 0
        self.lines = 0

    async def add(self, line: dict[str, Any]) -> None:
        self._buffer += json.dumps(line, separators=(",", ":")).encode() + b"\n"
        self.lines += 1
        while len(self._buffer) >= FILE_CHUNK_BYTES:
            await self._flush(FILE_CHUNK_BYTES)

    async def _flush(self, n: int) -> None:
        key = keys.file_chunk(keys.file(self.id), self._chunks)
        await self._state.put(key, bytes(self._buffer[:n]), FILE_TTL_SECONDS)
        self._size += n
        self._chunks += 1
        del self._buffer[:n]

    async def finish(self) -> str | None:
        """The file's id, once stored; None if it has no lines (OpenAI sends no file then)."""
        if not self.lines:
            return None
        if self._buffer:
            await self._flush(len(self._buffer))
        stored = StoredFile(
            id=self.id,
            bytes=self._size,
            created_at=now(),
            filename=self._name,
            purpose="batch_output",
            tenant=self._tenant,
            chunks=self._chunks,
            lines=self.lines,
        )
        await self._state.put(keys.openai_file(self.id), stored.model_dump_json(), FILE_TTL_SECONDS)
        return self.id
