"""Uploaded files in the state store, in chunks (see FileRef)."""

from __future__ import annotations

import asyncio
import logging

from jobrelay import keys
from jobrelay.constants import FILE_CHUNK_BYTES
from jobrelay.contract import FileRef
from jobrelay.state import BULK_BYTES, State

log = logging.getLogger(__name__)


class MissingFile(Exception):
    """A chunk of the file is gone (expired, or deleted with its finished job)."""


class FileStore:
    def __init__(self, state: State) -> None:
        self._state = state

    async def put_chunk(self, key: str, index: int, data: bytes, ttl_seconds: int) -> None:
        # Unguarded: a chunk key is written once, by the one request that uploads the file.
        await self._state.put(keys.file_chunk(key, index), data, ttl_seconds)

    async def read(self, ref: FileRef) -> bytes:
        chunk_keys = [keys.file_chunk(ref.key, i) for i in range(ref.chunks)]
        found = await self._state.get_many(
            chunk_keys, parallelism=4, keys_per_call=max(1, BULK_BYTES // FILE_CHUNK_BYTES)
        )
        chunks = [found.get(k) for k in chunk_keys]
        missing = sum(c is None for c in chunks)
        if missing and ref.size:
            raise MissingFile(f"{missing} of {ref.chunks} chunks of {ref.key} are missing")
        return b"".join(c.data for c in chunks if c is not None)

    async def delete(self, ref: FileRef) -> None:
        await self.delete_chunks(ref.key, ref.chunks)

    async def delete_chunks(self, key: str, chunks: int) -> None:
        """Best effort: a chunk left behind still expires with its TTL."""
        results = await asyncio.gather(
            *(self._state.delete(keys.file_chunk(key, i)) for i in range(chunks)),
            return_exceptions=True,
        )
        failed = sum(isinstance(r, BaseException) for r in results)
        if failed:
            log.warning(
                "%d of %d chunks of %s not deleted; they expire with their TTL", failed, chunks, key
            )
