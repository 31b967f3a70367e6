"""A batch's keys: its object (`batch:{id}`), its fan-out cursor (`batch:{id}:fanout`) and
each tenant's list of batches (`batch:index:{tenant}`). Counts are in counts.py.

Three keys, not one, so the writers of a batch do not contend: the API and the steps move
the object's status, only fan-out steps and the cancel step move the cursor, and the counts
move with every job that ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import BaseModel, Field

from apps.intake.batches.files import FILE_TTL_SECONDS
from apps.intake.batches.shapes import StoredBatch, is_batch_id
from jobrelay import keys
from jobrelay.state import State, Write

# A tenant's index keeps its newest this many batches (OpenAI lists them newest first).
_INDEX_SIZE = 1000


class Fanout(BaseModel):
    """How far a batch's lines have gone out as jobs.

    `next_line`/`next_offset`: the first line not yet out (and its byte offset). `claimed_to`:
    the end of the furthest range any step has started writing, so a step that finds its
    range claimed before knows it replays one: it inserts its records guarded, one per call,
    and never overwrites a record a worker has already moved on. `stopped`: cancelled or
    expired; no step starts after it.
    """

    next_line: int = 1
    next_offset: int = 0
    claimed_to: int = 1
    done: bool = False
    stopped: bool = False
    refused_steps: list[int] = Field(default_factory=list)  # first lines of steps that refused
    moved_at: float = 0.0


class BatchStore:
    def __init__(self, state: State) -> None:
        self.state = state

    async def get(self, batch_id: str) -> StoredBatch | None:
        if not is_batch_id(batch_id):
            return None
        item = await self.state.get(keys.batch(batch_id))
        return StoredBatch.model_validate_json(item.data) if item else None

    async def create(self, batch: StoredBatch) -> None:
        await self.state.insert(keys.batch(batch.id), batch.model_dump_json(), FILE_TTL_SECONDS)
        await self.state.put(
            keys.batch_fanout(batch.id), Fanout().model_dump_json(), FILE_TTL_SECONDS
        )

        def add(data: bytes | None) -> Write:
            ids = [batch.id, *(json.loads(data) if data else [])][:_INDEX_SIZE]
            return Write(json.dumps(ids), FILE_TTL_SECONDS)

        await self.state.update(keys.batches_of(batch.tenant), add)

    async def ids_of(self, tenant: str) -> list[str]:
        item = await self.state.get(keys.batches_of(tenant))
        ids: list[str] = json.loads(item.data) if item else []
        return ids

    async def update(
        self, batch_id: str, change: Callable[[StoredBatch], StoredBatch | None]
    ) -> tuple[StoredBatch | None, bool]:
        """Apply `change` under the batch object's ETag; (the batch now, whether written)."""

        def on_bytes(data: bytes | None) -> Write | None:
            if data is None:
                return None
            made = change(StoredBatch.model_validate_json(data))
            return None if made is None else Write(made.model_dump_json(), FILE_TTL_SECONDS)

        data, written = await self.state.update(keys.batch(batch_id), on_bytes)
        return (StoredBatch.model_validate_json(data) if data else None), written

    async def fanout(self, batch_id: str) -> Fanout:
        item = await self.state.get(keys.batch_fanout(batch_id))
        return Fanout.model_validate_json(item.data) if item else Fanout()

    async def move_fanout(
        self, batch_id: str, change: Callable[[Fanout], Fanout | None]
    ) -> tuple[Fanout, bool]:
        def on_bytes(data: bytes | None) -> Write | None:
            made = change(Fanout.model_validate_json(data) if data else Fanout())
            return None if made is None else Write(made.model_dump_json(), FILE_TTL_SECONDS)

        data, written = await self.state.update(keys.batch_fanout(batch_id), on_bytes)
        return (Fanout.model_validate_json(data) if data else Fanout()), written
