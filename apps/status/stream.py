"""The live event stream of one job (Server-Sent Events).

Each event is the job as the API shows it, with the record's `seq` as the event id. A stream
first sends the job as it is now (unless `Last-Event-ID` says the client has seen it), then
every change, and ends after the terminal one. Changes come from the `job-events` topic;
when the stream is idle it rereads the record, so an event the broker lost, or one published
before this replica subscribed, still arrives.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from fastapi.sse import ServerSentEvent

from jobrelay.constants import STREAM_KEEPALIVE_SECONDS
from jobrelay.contract import JobRecord, JobView
from jobrelay.hub import EventHub

# An event id is a record's `seq`: ASCII digits, far fewer than 19 of them. `str.isdigit`
# also takes "²" and other digits int() refuses, and int() refuses more than 4,300 digits.
_SEQ = re.compile(r"[0-9]{1,18}", re.ASCII)


def last_seen(last_event_id: str | None) -> int:
    """The `seq` a reconnecting client has seen, from its Last-Event-ID; -1 (send the job as
    it is now) for a missing or malformed one."""
    if last_event_id is None or not _SEQ.fullmatch(last_event_id):
        return -1
    return int(last_event_id)


def _event(record: JobRecord, base_url: str) -> ServerSentEvent:
    view = JobView.of(record, base_url)
    return ServerSentEvent(
        data=view.model_dump(mode="json"), event=record.status.value, id=str(record.seq)
    )


async def job_events(
    hub: EventHub,
    job_id: str,
    last_seen: int,
    base_url: str,
    keepalive: float = STREAM_KEEPALIVE_SECONDS,
) -> AsyncIterator[ServerSentEvent]:
    with hub.watch(job_id) as changes:
        # Registered on the record before reading it (jobrelay.hub): nothing falls between.
        current = await hub.register(job_id)
        if current is None:
            return
        record = current
        while True:
            if record.seq > last_seen:
                last_seen = record.seq
                yield _event(record, base_url)
            if record.status.terminal:
                return
            try:
                newer = await asyncio.wait_for(changes.get(), keepalive)
            except TimeoutError:
                yield ServerSentEvent(comment="keepalive")
                reread = await hub.jobs.get(job_id)
                if reread is None:
                    return
                newer = reread.record
            if newer.seq > record.seq:
                record = newer
