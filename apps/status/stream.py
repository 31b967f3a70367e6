"""The live event stream of one job (Server-Sent Events).

Each status event is the job as the API shows it, with the record's `seq` as its id. A
streaming task (chat, summarize) also sends `delta` events while it runs: the text added
since the last one, with ids `{seq}.{n}` that fall between its `running` and the terminal
event (jobrelay.event_ids). A stream first sends the job as it is now (unless
`Last-Event-ID` says the client has seen it), then everything after what the client has
seen, and ends after the terminal event.

Deltas are always read from the store (jobrelay.deltas), from the one after the last sent,
in order and up to the first not yet stored; an event only says when to read. So a stream
sends each delta exactly once whatever it was told and when: on a reconnect, on another
replica, after the job ended (the chunks live as long as the job), or when the worker could
not know of this watcher (it then reads every `_DELTA_POLL_SECONDS` while the job runs).
Status changes come from the `job-events` topic; when the stream is idle it rereads the
record, so an event the broker lost, or one published before this replica subscribed, still
arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.sse import ServerSentEvent

from jobrelay.constants import STREAM_KEEPALIVE_SECONDS
from jobrelay.contract import JobRecord, JobStatus, JobView
from jobrelay.deltas import STREAMING_TASKS, DeltaLog
from jobrelay.event_ids import EventId
from jobrelay.hub import EventHub

# How often a running streaming job's stream looks for deltas it was not told of.
_DELTA_POLL_SECONDS = 0.25


def _event(record: JobRecord, base_url: str) -> ServerSentEvent:
    view = JobView.of(record, base_url)
    return ServerSentEvent(
        data=view.model_dump(mode="json"), event=record.status.value, id=str(record.seq)
    )


class _Cursor:
    """What the client has seen, and the events that follow it."""

    def __init__(self, deltas: DeltaLog, seen: EventId, base_url: str) -> None:
        self._deltas = deltas
        self.seen = seen
        self._base_url = base_url

    async def _deltas_of(self, job_id: str, seq: int) -> list[ServerSentEvent]:
        """The stored deltas of the attempt at `seq` after the one last sent."""
        after = self.seen.delta if self.seen.seq == seq else 0
        texts = await self._deltas.read(job_id, seq, after + 1)
        events = []
        for n, text in enumerate(texts, start=after + 1):
            self.seen = EventId(seq, n)
            events.append(ServerSentEvent(data={"text": text}, event="delta", id=str(self.seen)))
        return events

    async def catch_up(self, record: JobRecord) -> list[ServerSentEvent]:
        """Every event after the one last sent, up to `record` as it now stands."""
        events: list[ServerSentEvent] = []
        streams = record.task in STREAMING_TASKS
        if streams and 0 <= self.seen.seq < record.seq:
            # Attempts that ended since what the client saw (the one it saw part of, or
            # its `running` alone, and any after it): their text comes before what
            # followed. A resume is rare and a job has few changes: one read each.
            for seq in range(self.seen.seq, record.seq):
                events += await self._deltas_of(record.id, seq)
        if record.seq > self.seen.seq:
            self.seen = EventId(record.seq)
            events.append(_event(record, self._base_url))
        if streams and record.status is JobStatus.RUNNING:
            events += await self._deltas_of(record.id, record.seq)
        return events


async def job_events(
    hub: EventHub,
    deltas: DeltaLog,
    job_id: str,
    seen: EventId,
    base_url: str,
    keepalive: float = STREAM_KEEPALIVE_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    cursor = _Cursor(deltas, seen, base_url)
    with hub.watch(job_id) as changes:
        # Registered on the record before reading it (jobrelay.hub): nothing falls between.
        current = await hub.register(job_id)
        if current is None:
            return
        record = current
        quiet_since = loop.time()
        while True:
            for event in await cursor.catch_up(record):
                quiet_since = loop.time()
                yield event
            if record.status.terminal:
                return
            polling = record.task in STREAMING_TASKS and record.status is JobStatus.RUNNING
            wait = keepalive - (loop.time() - quiet_since)
            if polling:
                wait = min(wait, _DELTA_POLL_SECONDS)
            try:
                change = await asyncio.wait_for(changes.get(), max(wait, 0.0))
            except TimeoutError:
                if loop.time() - quiet_since < keepalive:
                    continue  # time to look for deltas: catch_up reads them
                quiet_since = loop.time()
                yield ServerSentEvent(comment="keepalive")
                reread = await hub.jobs.get(job_id)
                if reread is None:
                    return
                change = reread.record
            if isinstance(change, JobRecord) and change.seq > record.seq:
                record = change
