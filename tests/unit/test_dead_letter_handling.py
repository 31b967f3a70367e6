"""The worker's dead-letter handler: a job given up is always on its tenant's replay list,
even when one of the two writes fails. Runs the real handler on the in-memory FAKE of the
Dapr client (tests/doubles/memory_dapr.py)."""

from __future__ import annotations

import json
from typing import cast

import pytest
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError

from apps.worker.main import Worker
from apps.worker.settings import WorkerSettings
from jobrelay.contract import JobInput, JobMessage, JobRecord, JobStatus, utcnow
from jobrelay.dead_letters import DeadLetters
from jobrelay.service import Sidecar
from jobrelay.subscriptions import Delivery, Message
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio


@pytest.fixture
async def worker() -> Worker:
    worker = Worker(WorkerSettings.model_validate({"port": 1}))
    await worker.start(Sidecar(cast(DaprClient, MemoryDapr()), retention_seconds=60))
    return worker


def _sidecar(worker: Worker) -> Sidecar:
    sidecar = worker._sidecar
    assert sidecar is not None
    return sidecar


def _dead_letter(record: JobRecord) -> Message:
    message = JobMessage(job_id=record.id, task=record.task, sent_at=utcnow())
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "intake",
        "type": "com.dapr.event.sent",
        "datacontenttype": "application/json",
        "data": json.loads(message.model_dump_json()),
    }
    headers = {"content-type": "application/cloudevents+json"}
    return Message(json.dumps(event).encode(), headers)


async def _queued(sidecar: Sidecar) -> JobRecord:
    record = JobRecord.new("classify", JobInput(text="always fails"), {"labels": ["a"]}, {})
    await sidecar.jobs.create(record)
    return record


async def test_a_dead_letter_fails_the_job_and_lists_it(worker: Worker) -> None:
    sidecar = _sidecar(worker)
    record = await _queued(sidecar)

    assert await worker.on_dead_letter(_dead_letter(record)) is Delivery.SUCCESS

    stored = await sidecar.jobs.get(record.id)
    assert stored is not None
    assert stored.record.status is JobStatus.FAILED
    assert await DeadLetters(sidecar.state).ids(record.tenant) == [record.id]


async def test_a_failed_listing_is_retried_and_the_job_is_listed_once_given_up(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed before it is failed: had the job been failed first, the redelivery would find
    it terminal and drop the dead letter, and the job would never reach the replay list."""
    sidecar = _sidecar(worker)
    record = await _queued(sidecar)
    add = DeadLetters.add
    failures = [DaprInternalError("the store is unreachable (test fault)")]

    async def fails_once(self: DeadLetters, tenant: str, job_id: str) -> None:
        if failures:
            raise failures.pop()
        await add(self, tenant, job_id)

    monkeypatch.setattr(DeadLetters, "add", fails_once)

    assert await worker.on_dead_letter(_dead_letter(record)) is Delivery.RETRY
    assert await worker.on_dead_letter(_dead_letter(record)) is Delivery.SUCCESS

    stored = await sidecar.jobs.get(record.id)
    assert stored is not None
    assert stored.record.status is JobStatus.FAILED
    assert await DeadLetters(sidecar.state).ids(record.tenant) == [record.id]


async def test_a_dead_letter_for_a_finished_job_changes_nothing(worker: Worker) -> None:
    sidecar = _sidecar(worker)
    record = await _queued(sidecar)
    assert await worker.on_dead_letter(_dead_letter(record)) is Delivery.SUCCESS
    await DeadLetters(sidecar.state).remove(record.tenant, {record.id})  # replayed meanwhile

    assert await worker.on_dead_letter(_dead_letter(record)) is Delivery.SUCCESS

    assert await DeadLetters(sidecar.state).ids(record.tenant) == []
