"""A job's event stream with deltas (apps/status/stream.py): every delta exactly once and in
order, between `running` and the end, from any Last-Event-ID, live or after the job ended.

The job store and the delta chunks are the real state layer over an in-memory FAKE of the
Dapr client (tests/doubles/memory_dapr.py); the two-replica run on real daprd is
tests/integration/test_streaming.py."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from apps.status.stream import job_events
from jobrelay import keys
from jobrelay.contract import JobInput, JobRecord, JobStatus
from jobrelay.deltas import DeltaLog
from jobrelay.event_ids import NOTHING_SEEN, EventId
from jobrelay.hub import Delta, EventHub
from jobrelay.state import State
from jobrelay.store import JobStore
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

TEXT = ["Once", " upon", " a", " time"]


class Setup:
    def __init__(self) -> None:
        self.dapr = MemoryDapr()
        state = State(cast(Any, self.dapr))
        self.jobs = JobStore(state, retention_seconds=60)
        self.deltas = DeltaLog(state)
        self.hub = EventHub("status-test")
        self.hub.bind(self.jobs)
        self.queued = JobRecord.new("chat", JobInput(text="tell me"), {}, {})
        self.running = self.queued.moved_to(JobStatus.RUNNING)
        self.done = self.running.moved_to(JobStatus.SUCCEEDED)

    def store(self, record: JobRecord) -> None:
        self.dapr.put(keys.job(record.id), record.model_dump_json())

    async def append(self, n: int) -> None:
        await self.deltas.append(self.running, n, TEXT[n - 1], 60)

    async def read(self, seen: EventId, seconds: float = 10) -> list[tuple[Any, Any, Any]]:
        events = job_events(self.hub, self.deltas, self.queued.id, seen, "http://s", 5)
        out = []
        async with asyncio.timeout(seconds):
            async for event in events:
                out.append((event.event, event.id, event.data))
        return out


async def finished() -> Setup:
    setup = Setup()
    for n in range(1, len(TEXT) + 1):
        await setup.append(n)
    setup.store(setup.done)
    return setup


@pytest.mark.parametrize(
    ("last_event_id", "deltas_after"),
    [("1.1", 1), ("1.3", 3), ("1.4", 4), ("1", 0), ("0", 0)],
)
async def test_a_resume_after_the_end_sends_the_rest_of_the_text_then_the_end(
    last_event_id: str, deltas_after: int
) -> None:
    setup = await finished()
    events = await setup.read(EventId.parse(last_event_id) or NOTHING_SEEN)
    deltas = [(kind, id_, data["text"]) for kind, id_, data in events[:-1]]
    expected = [("delta", f"1.{n}", TEXT[n - 1]) for n in range(deltas_after + 1, 5)]
    assert deltas == expected
    assert [(kind, id_) for kind, id_, _ in events[-1:]] == [("succeeded", "2")]


async def test_a_new_stream_of_a_finished_job_sends_the_end_alone() -> None:
    setup = await finished()
    events = await setup.read(NOTHING_SEEN)
    assert [(kind, id_) for kind, id_, _ in events] == [("succeeded", "2")]


@pytest.mark.parametrize("told", [True, False], ids=["told-by-events", "polling"])
async def test_a_live_stream_sends_each_delta_once_between_running_and_the_end(
    told: bool,
) -> None:
    setup = Setup()
    setup.store(setup.running)

    async def worker() -> None:
        for n in range(1, len(TEXT) + 1):
            await asyncio.sleep(0.1)
            await setup.append(n)
            if told:
                setup.hub.publish(Delta(setup.queued.id, setup.running.seq, n))
        setup.store(setup.done)
        setup.hub.publish(setup.done)

    running = asyncio.create_task(worker())
    events = await setup.read(NOTHING_SEEN)
    await running
    assert [(kind, id_) for kind, id_, _ in events] == [
        ("running", "1"),
        ("delta", "1.1"),
        ("delta", "1.2"),
        ("delta", "1.3"),
        ("delta", "1.4"),
        ("succeeded", "2"),
    ]
    assert "".join(data["text"] for kind, _, data in events if kind == "delta") == "".join(TEXT)


async def test_a_classify_job_never_looks_for_deltas() -> None:
    setup = Setup()
    job = JobRecord.new("classify", JobInput(text="x"), {}, {}).moved_to(JobStatus.RUNNING)
    # Chunks under its key would be sent if the stream looked: it must not.
    await setup.deltas.append(job, 1, "never", 60)
    setup.store(job.moved_to(JobStatus.SUCCEEDED))
    events = job_events(setup.hub, setup.deltas, job.id, EventId(1), "http://s", 5)
    kinds = [event.event async for event in events]
    assert kinds == ["succeeded"]
