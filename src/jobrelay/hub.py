"""In-process fan-out of job events to whoever waits on a job in this process: live event
streams (status) and `Prefer: wait` (intake).

The replica subscribes to `job-events` with a rule that passes only events naming it
(jobrelay.events), so its app hears only of jobs it waits on. To wait on a job, a request
enters `watch` first, then puts the replica on the job's record (`register`), then reads
it: a change written after that read names this replica in its event, and one written
before it is in what was read.

A streaming task's delta events (jobrelay.deltas) are passed on as `Delta`s, without reading
anything: the stream reads the chunks it has not sent yet, in bulk, whatever it was told.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jobrelay.constants import EVENTS_PUBSUB, JOB_EVENTS_TOPIC
from jobrelay.contract import JobRecord
from jobrelay.errors import DAPR_ERRORS
from jobrelay.events import subscription_rule
from jobrelay.store import JobStore
from jobrelay.subscriptions import (
    Delivery,
    Message,
    Subscription,
    Subscriptions,
    read_job_event,
)

log = logging.getLogger(__name__)

# Events a slow reader may fall behind by before the oldest are dropped. A reader that drops
# events loses nothing that matters: it rereads the record from the store when idle.
_QUEUE_SIZE = 32


@dataclass(frozen=True, slots=True)
class Delta:
    """Chunk `n` of the text streamed in the job's `running` at `seq` is stored."""

    job_id: str
    seq: int
    n: int


Change = JobRecord | Delta


class EventHub:
    """Made with its app; `bind` gives it the job store once the app's sidecar is up."""

    def __init__(self, replica: str) -> None:
        self.replica = replica  # this process's name among a job's watchers
        self._jobs: JobStore | None = None
        self._watchers: defaultdict[str, set[asyncio.Queue[Change]]] = defaultdict(set)

    def bind(self, jobs: JobStore) -> None:
        self._jobs = jobs

    @property
    def jobs(self) -> JobStore:
        assert self._jobs is not None, "the hub is bound in the app's lifespan"
        return self._jobs

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Queue[Change]]:
        """A queue that receives every record (and delta) of `job_id` this replica hears of
        while the block runs. Enter it BEFORE registering on the record and reading it."""
        queue: asyncio.Queue[Change] = asyncio.Queue(_QUEUE_SIZE)
        self._watchers[job_id].add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers[job_id]
            watchers.discard(queue)
            if not watchers:
                del self._watchers[job_id]

    async def register(self, job_id: str) -> JobRecord | None:
        """Put this replica among the job's watchers (unless the job is over, or it is there
        already); the job's record as it then stands, None if there is no such job."""

        def watched(record: JobRecord) -> JobRecord | None:
            return None if record.status.terminal else record.watched_by(self.replica)

        updated = await self.jobs.update(job_id, watched)
        return None if updated is None else updated.record

    def watched(self, job_id: str) -> bool:
        return job_id in self._watchers

    def publish(self, change: Change) -> None:
        job_id = change.id if isinstance(change, JobRecord) else change.job_id
        for queue in self._watchers.get(job_id, ()):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(change)

    def subscribe(self, subscriptions: Subscriptions) -> None:
        """Feed this hub from `job-events`, with only the events that name this replica."""
        rule = subscription_rule(self.replica)
        subscriptions.add(Subscription(EVENTS_PUBSUB, JOB_EVENTS_TOPIC, match=rule), self._on)

    async def _on(self, message: Message) -> Delivery:
        event = read_job_event(message)
        if event is None:
            return Delivery.DROP
        # The rule already passed only this replica's events; a waiter may have left since.
        if not self.watched(event.job_id):
            return Delivery.SUCCESS
        if event.delta is not None:
            self.publish(Delta(event.job_id, event.seq, event.delta))
            return Delivery.SUCCESS
        try:
            versioned = await self.jobs.get(event.job_id)
        except DAPR_ERRORS as exc:
            # The waiters reread the record when idle, so nothing is lost.
            log.warning("job_id=%s event not passed on; store unreachable: %s", event.job_id, exc)
            return Delivery.SUCCESS
        if versioned is not None:
            self.publish(versioned.record)
        return Delivery.SUCCESS


async def until_terminal(
    queue: asyncio.Queue[Change], current: JobRecord, seconds: float
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
        if isinstance(record, JobRecord) and record.seq > current.seq:
            current = record
    return current
