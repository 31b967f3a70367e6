"""Uploaded files in the Dapr state store, in chunks (see FileRef)."""

from __future__ import annotations

import asyncio
import logging

from dapr.aio.clients import DaprClient

from jobrelay.constants import FILE_KEY_PREFIX, STATESTORE
from jobrelay.contract import FileRef

log = logging.getLogger(__name__)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def file_key(job_id: str) -> str:
    return f"{FILE_KEY_PREFIX}{job_id}"


def chunk_key(key: str, index: int) -> str:
    return f"{key}:{index}"


class MissingFile(Exception):
    """A chunk of the file is gone (expired, or deleted with its finished job)."""


class FileStore:
    def __init__(self, dapr: DaprClient, store_name: str = STATESTORE) -> None:
        self._dapr = dapr
        self._store = store_name

    async def put_chunk(self, key: str, index: int, data: bytes, ttl_seconds: int) -> None:
        await self._dapr.save_state(
            self._store,
            chunk_key(key, index),
            data,
            state_metadata={"ttlInSeconds": str(ttl_seconds)},
        )

    async def read(self, ref: FileRef) -> bytes:
        keys = [chunk_key(ref.key, i) for i in range(ref.chunks)]
        if not keys:
            return b""
        resp = await self._dapr.get_bulk_state(self._store, keys, parallelism=4)
        by_key = {item.key: _as_bytes(item.data) for item in resp.items}
        missing = [k for k in keys if not by_key.get(k)]
        if missing and ref.size:
            raise MissingFile(f"{len(missing)} of {ref.chunks} chunks of {ref.key} are gone")
        return b"".join(by_key[k] for k in keys)

    async def delete(self, ref: FileRef) -> None:
        await self.delete_chunks(ref.key, ref.chunks)

    async def delete_chunks(self, key: str, chunks: int) -> None:
        """Best effort: a chunk left behind still expires with its TTL."""
        results = await asyncio.gather(
            *(self._dapr.delete_state(self._store, chunk_key(key, i)) for i in range(chunks)),
            return_exceptions=True,
        )
        failed = sum(isinstance(r, BaseException) for r in results)
        if failed:
            log.warning(
                "%d of %d chunks of %s not deleted; they expire with their TTL", failed, chunks, key
            )
