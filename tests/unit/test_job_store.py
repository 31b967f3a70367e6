"""JobStore's split of a job into its record and its encrypted contents, on an in-memory
stand-in for the Dapr client (the real stores are covered by tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from dapr.aio.clients import DaprClient

from jobrelay.constants import PAYLOADS_STORE, STATESTORE
from jobrelay.contract import JobInput, JobRecord, JobResult, JobStatus, Usage
from jobrelay.payloads import MissingContents
from jobrelay.store import JobStore


@dataclass
class _Read:
    data: bytes
    etag: str


@dataclass
class MemoryDapr:
    """The state calls JobStore makes, on dicts; ETags are version numbers."""

    stores: dict[str, dict[str, tuple[str, int]]] = field(
        default_factory=lambda: {STATESTORE: {}, PAYLOADS_STORE: {}}
    )
    # Runs before each read of the payloads store: a writer racing a reader.
    before_contents_read: Callable[[], Awaitable[None]] | None = None

    async def get_state(self, store: str, key: str) -> _Read:
        if store == PAYLOADS_STORE and self.before_contents_read:
            hook, self.before_contents_read = self.before_contents_read, None
            await hook()
        value, version = self.stores[store].get(key, ("", 0))
        return _Read(value.encode(), str(version))

    async def save_state(self, store: str, key: str, value: str, **_options: Any) -> None:
        version = self.stores[store].get(key, ("", 0))[1]
        self.stores[store][key] = (value, version + 1)

    async def delete_state(self, store: str, key: str) -> None:
        self.stores[store].pop(key, None)

    def raw(self, store: str, key: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.stores[store][key][0])
        return loaded


def _job() -> JobRecord:
    return JobRecord.new("classify", JobInput(text="a private review"), {"labels": ["a"]}, {})


def _succeeded(record: JobRecord) -> JobRecord:
    usage = Usage(prompt_tokens=1, total_tokens=1)
    result = JobResult(output={"label": "a"}, model="m", usage=usage)
    running = record.moved_to(JobStatus.RUNNING)
    return running.moved_to(JobStatus.SUCCEEDED, result=result)


@pytest.fixture
def dapr() -> MemoryDapr:
    return MemoryDapr()


@pytest.fixture
def store(dapr: MemoryDapr) -> JobStore:
    return JobStore(cast(DaprClient, dapr), retention_seconds=60)


@pytest.mark.anyio
async def test_a_record_is_stored_without_its_contents_and_read_back_whole(
    dapr: MemoryDapr, store: JobStore
) -> None:
    job = _job()
    await store.create(job)

    stored = dapr.raw(STATESTORE, f"job:{job.id}")
    assert (stored["input"]["text"], stored["params"], stored["result"]) == (None, {}, None)
    contents = dapr.raw(PAYLOADS_STORE, stored["contents"])
    assert contents["text"] == "a private review"

    read = await store.get(job.id)
    assert read is not None
    assert (read.record.input.text, read.record.params) == ("a private review", {"labels": ["a"]})


@pytest.mark.anyio
async def test_contents_are_rewritten_only_when_they_can_change(
    dapr: MemoryDapr, store: JobStore
) -> None:
    job_id = (job := _job()).id
    await store.create(job)
    first = await store.get(job_id)
    assert first is not None

    running = first.record.moved_to(JobStatus.RUNNING)
    await store.replace(running, first.etag)
    assert dapr.raw(STATESTORE, f"job:{job_id}")["contents"] == first.record.contents

    claimed = await store.get(job_id)
    assert claimed is not None
    await store.replace(_succeeded(first.record), claimed.etag)
    key = dapr.raw(STATESTORE, f"job:{job_id}")["contents"]
    assert key != first.record.contents
    assert list(dapr.stores[PAYLOADS_STORE]) == [key]  # the old contents went
    assert dapr.raw(PAYLOADS_STORE, key)["result"]["output"] == {"label": "a"}


@pytest.mark.anyio
async def test_a_read_racing_a_rewrite_follows_the_record_to_its_new_contents(
    dapr: MemoryDapr, store: JobStore
) -> None:
    job = _job()
    await store.create(job)
    before = await store.get(job.id)
    assert before is not None

    async def finish_meanwhile() -> None:
        await store.replace(_succeeded(before.record), before.etag)

    # The reader has the record naming the first contents; the writer replaces (and deletes)
    # them before the reader gets there.
    dapr.before_contents_read = finish_meanwhile
    read = await store.get(job.id)
    assert read is not None
    assert read.record.status is JobStatus.SUCCEEDED
    assert read.record.result is not None
    assert read.record.input.text == "a private review"


@pytest.mark.anyio
async def test_contents_that_are_gone_for_good_are_an_error(
    dapr: MemoryDapr, store: JobStore
) -> None:
    job = _job()
    await store.create(job)
    dapr.stores[PAYLOADS_STORE].clear()
    with pytest.raises(MissingContents):
        await store.get(job.id)
