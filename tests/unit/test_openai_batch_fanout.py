"""A batch's fan-out on the in-memory FAKE of the Dapr client (tests/doubles): a step's
lines become jobs and messages, a duplicate step does nothing, and a step replayed after a
crash (its range claimed, the cursor not moved) never overwrites a record a worker already
claimed. The real engine runs on daprd in tests/integration/test_openai_batch.py."""

from __future__ import annotations

import json

import pytest

from apps.intake.batches.counts import BatchCounts
from apps.intake.batches.fanout import FanOut
from apps.intake.batches.files import BatchFiles
from apps.intake.batches.shapes import (
    BatchStatus,
    RequestCounts,
    Step,
    StoredBatch,
    StoredFile,
    job_id_of,
)
from apps.intake.batches.store import BatchStore, Fanout
from jobrelay.contract import JobStatus, Priority
from jobrelay.job_index import JobIndex
from jobrelay.lanes import Lanes, LaneSettings
from jobrelay.limits import LimitReached
from jobrelay.service import Sidecar
from tests.doubles.memory_dapr import MemoryDapr
from tests.unit.batch_setup import WiredIntake, stored_file, wired_intake

pytestmark = pytest.mark.anyio


async def _setup(
    lines: list[bytes], wired: WiredIntake | None = None
) -> tuple[MemoryDapr, Sidecar, FanOut, StoredBatch, StoredFile]:
    wired = wired or wired_intake()
    sidecar = wired.sidecar
    source = await stored_file(sidecar, lines)
    batch = StoredBatch(
        id="batch_1",
        endpoint="/v1/embeddings",
        input_file_id="file-in",
        completion_window="24h",
        status=BatchStatus.IN_PROGRESS,
        created_at=0,
        request_counts=RequestCounts(total=len(lines)),
        tenant="t",
    )
    store = BatchStore(sidecar.state)
    await store.create(batch)
    sent: list[Step] = []

    async def send(step: Step) -> None:
        sent.append(step)

    files = BatchFiles(sidecar.state, 10**6)
    counts = BatchCounts(sidecar.state)
    fan_out = FanOut(wired.intake, wired.quotas, wired.settings, store, files, counts, send)
    return wired.dapr, sidecar, fan_out, batch, source


async def _no_step(step: Step) -> None:
    pass


def _embedding(n: int) -> bytes:
    body = {"input": f"text {n}"}
    return json.dumps(
        {"custom_id": f"c{n}", "method": "POST", "url": "/v1/embeddings", "body": body}
    ).encode()


# A batch's jobs go out on its tenant's `low` lane (apps/intake/batches/lines.py).
_LOW_LANE = Lanes(LaneSettings()).topic(Priority.LOW, "t")


def _job_messages(dapr: MemoryDapr) -> list[str]:
    return [json.loads(data)["job_id"] for _, topic, data in dapr.published if topic == _LOW_LANE]


async def test_a_step_makes_jobs_and_a_duplicate_step_makes_none() -> None:
    dapr, sidecar, fan_out, batch, source = await _setup([_embedding(n) for n in range(3)] + [b"{"])
    ended = await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    assert ended
    ids = [job_id_of(batch.id, n) for n in (1, 2, 3)]
    assert sorted(_job_messages(dapr)) == sorted(ids)
    records = await sidecar.jobs.get_many(ids)
    assert {r.status for r in records.values()} == {JobStatus.QUEUED}
    assert {r.priority for r in records.values()} == {Priority.LOW}
    assert (await BatchCounts(sidecar.state).read(batch.id)).failed == 1  # the line "{"
    fan = await BatchStore(sidecar.state).fanout(batch.id)
    assert (fan.next_line, fan.done, fan.refused_steps) == (5, True, [1])
    # Redelivered after the cursor moved: nothing is written or sent again.
    assert not await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    assert len(_job_messages(dapr)) == 3
    # Listed like any accepted job (GET /v1/jobs), once each.
    head = await JobIndex(sidecar.state, 3600).head("t")
    assert head is not None
    assert [e.id for e in head.tail] == ids


async def test_a_replayed_step_never_overwrites_a_claimed_record() -> None:
    dapr, sidecar, fan_out, batch, source = await _setup([_embedding(n) for n in range(2)])
    await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    claimed = job_id_of(batch.id, 1)
    versioned = await sidecar.jobs.get(claimed)
    assert versioned is not None
    await sidecar.jobs.replace(versioned.record.moved_to(JobStatus.RUNNING), versioned.etag)
    # The step's process died after storing and publishing, before the cursor moved.
    store = BatchStore(sidecar.state)
    await store.move_fanout(batch.id, lambda fan: Fanout(claimed_to=fan.claimed_to))
    await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    again = await sidecar.jobs.get(claimed)
    assert again is not None
    assert again.record.status is JobStatus.RUNNING  # not put back to queued
    assert len(_job_messages(dapr)) == 4  # sent again: harmless, the worker claims once


async def test_a_stopped_batch_sends_nothing() -> None:
    dapr, sidecar, fan_out, batch, source = await _setup([_embedding(0)])
    store = BatchStore(sidecar.state)
    await store.move_fanout(batch.id, lambda fan: fan.model_copy(update={"stopped": True}))
    assert not await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    assert _job_messages(dapr) == []


class _FullQuota:
    """The tenant's waiting-jobs quota stays full; the batch is cancelled while a step waits."""

    def __init__(self, store: BatchStore, batch_id: str) -> None:
        self.store, self.batch_id, self.asked = store, batch_id, 0

    async def admit(self, subject: object) -> None:
        self.asked += 1
        if self.asked == 2:
            await self.store.move_fanout(
                self.batch_id, lambda fan: fan.model_copy(update={"stopped": True})
            )
        raise LimitReached("queue_full", "the tenant's queue is full", retry_after=0.01)


async def test_a_step_waiting_on_the_quota_stops_with_its_batch_and_sends_nothing() -> None:
    wired = wired_intake()
    dapr, sidecar, _, batch, source = await _setup([_embedding(n) for n in range(3)], wired)
    store = BatchStore(sidecar.state)
    quota = _FullQuota(store, batch.id)
    fan_out = FanOut(
        wired.intake,
        quota,  # type: ignore[arg-type]
        wired.settings,
        store,
        BatchFiles(sidecar.state, 10**6),
        BatchCounts(sidecar.state),
        _no_step,
    )
    assert not await fan_out.step(batch, source, Step(batch_id=batch.id, kind="fan_out"))
    assert quota.asked == 2  # it waited, and gave up at the first look after the stop
    assert _job_messages(dapr) == []
    assert await sidecar.jobs.get_many([job_id_of(batch.id, n) for n in (1, 2, 3)]) == {}
