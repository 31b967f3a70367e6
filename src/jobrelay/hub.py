"""In-process fan-out of job events to whoever waits on a job in this process: live event
streams (status) and `Prefer: wait` (intake). Fed by a subscription to `job-events`."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from jobrelay.contract import JobRecord

# Events a slow reader may fall behind by before the oldest are dropped. A reader that drops
# events loses nothing that matters: it rereads the record from the store when idle.
_QUEUE_SIZE = 32


class EventHub:
    def __init__(self) -> None:
        self._watchers: defaultdict[str, set[asyncio.Queue[JobRecord]]] = defaultdict(set)

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Queue[JobRecord]]:
        """A queue that receives every record of `job_id` published while the block runs.

        Enter it BEFORE reading the current record, so no change can fall between the two.
        """
        queue: asyncio.Queue[JobRecord] = asyncio.Queue(_QUEUE_SIZE)
        self._watchers[job_id].add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers[job_id]
            watchers.discard(queue)
            if not watchers:
                del self._watchers[job_id]

    def watched(self, job_id: str) -> bool:
        return job_id in self._watchers

    def publish(self, record: JobRecord) -> None:
        for queue in self._watchers.get(record.id, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(record)


async def until_terminal(
    queue: asyncio.Queue[JobRecord], current: JobRecord, seconds: float
) -> JobRecord:
    """The newest record seen once the job is terminal, or when `seconds` have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not current.status.terminal:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            record = await asyncio.wait_for(queue.get(), remaining)
        except TimeoutError:
            break
        if record.seq > current.seq:
            current = record
    return current
