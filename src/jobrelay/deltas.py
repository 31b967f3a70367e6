"""The text a streaming task (chat, summarize) streams while it runs, kept in the state store.

The worker writes the text in chunks, each one unguarded put (coalesced into bulk saves with
every other put in flight: jobrelay.state) of `delta:{job_id}:{seq}:{n}`, `seq` being the
`running` change of the attempt and `n` counting from 1. Only one worker writes an attempt's
chunks, in order, so no write needs a guard. A chunk lives as long as its job's record can
(the record's own TTL plus the retention), so a client may resume a stream after the job
ended, on any status replica.

Readers take chunks in order from a number on, in bulk, and stop at the first missing one:
chunks are written one after another, so what is there is always a whole prefix.
"""

from __future__ import annotations

from jobrelay import keys
from jobrelay.contract import JobRecord
from jobrelay.state import State

# The tasks whose text is streamed: their model's answer is their output, as it is written.
STREAMING_TASKS = frozenset({"chat", "summarize"})

# Chunks asked for in one bulk read; a reader that gets them all asks for the next page.
_PAGE = 32


class DeltaLog:
    def __init__(self, state: State) -> None:
        self._state = state

    async def append(self, record: JobRecord, n: int, text: str, ttl_seconds: int) -> None:
        """Store chunk `n` of the attempt `record` (running) stands for."""
        await self._state.put(keys.delta(record.id, record.seq, n), text, ttl_seconds)

    async def read(self, job_id: str, seq: int, first: int, last: int | None = None) -> list[str]:
        """Chunks `first`, `first`+1, ... (to `last`, if given) of the attempt that ran at
        `seq`, up to the first one not (yet) stored."""
        chunks: list[str] = []
        n = first
        while last is None or n <= last:
            end = n + _PAGE - 1 if last is None else min(n + _PAGE - 1, last)
            wanted = [keys.delta(job_id, seq, i) for i in range(n, end + 1)]
            items = await self._state.get_many(wanted)
            for key in wanted:
                item = items.get(key)
                if item is None:
                    return chunks
                chunks.append(item.data.decode())
            n = end + 1
        return chunks
