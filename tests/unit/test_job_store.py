"""The job store and the state layer under it, on an in-memory FAKE of the Dapr client that
keeps Dapr's ETag rules (tests/doubles/memory_dapr.py); tests/integration runs the same
code on real daprd and real stores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from dapr.aio.clients import DaprClient
from dapr.clients.exceptions import DaprInternalError

from jobrelay import keys
from jobrelay.constants import FENCE_TTL_SECONDS, MAX_JOB_LIFETIME_SECONDS
from jobrelay.contract import FileRef, JobInput, JobRecord, JobResult, JobStatus, Usage
from jobrelay.state import UPDATE_TRIES, Conflict, Contended, KeyTaken, State, Write
from jobrelay.store import Fenced, JobStore, StaleRecord
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

RETENTION = 60


def _job(**changes: object) -> JobRecord:
    job = JobRecord.new("classify", JobInput(text="a private review"), {"labels": ["a"]}, {})
    return job.model_copy(update=changes)


def _succeeded(record: JobRecord) -> JobRecord:
    usage = Usage(prompt_tokens=1, total_tokens=1)
    result = JobResult(output={"label": "a"}, model="m", usage=usage)
    return record.moved_to(JobStatus.RUNNING).moved_to(JobStatus.SUCCEEDED, result=result)


@pytest.fixture
def dapr() -> MemoryDapr:
    return MemoryDapr()


@pytest.fixture
def state(dapr: MemoryDapr) -> State:
    return State(cast(DaprClient, dapr))


@pytest.fixture
def jobs(state: State) -> JobStore:
    return JobStore(state, retention_seconds=RETENTION)


async def test_a_job_is_one_key_read_back_whole_in_one_call(
    dapr: MemoryDapr, jobs: JobStore
) -> None:
    job = _job()
    await jobs.create(job)
    dapr.calls.clear()

    versioned = await jobs.get(job.id)

    assert versioned is not None
    assert versioned.record == job
    assert dapr.calls == {"get_state": 1}
    assert [key for _, key in dapr.rows] == [keys.job(job.id)]


async def test_every_write_of_a_job_has_a_ttl_and_none_is_minus_one(
    dapr: MemoryDapr, jobs: JobStore
) -> None:
    """Queued and running jobs expire once they could no longer run (a lost message must not
    leave a job queued for ever); finished ones after the retention. -1 would cost Redis a
    PERSIST on every write."""
    job = _job()
    await jobs.create(job)
    queued_ttl = int(dapr.ttl(keys.job(job.id)) or 0)
    assert MAX_JOB_LIFETIME_SECONDS <= queued_ttl <= MAX_JOB_LIFETIME_SECONDS + RETENTION

    versioned = await jobs.get(job.id)
    assert versioned is not None
    await jobs.replace(versioned.record.moved_to(JobStatus.RUNNING), versioned.etag)
    assert int(dapr.ttl(keys.job(job.id)) or 0) > RETENTION

    versioned = await jobs.get(job.id)
    assert versioned is not None
    done = versioned.record.moved_to(JobStatus.SUCCEEDED)
    await jobs.replace(done, versioned.etag)
    assert dapr.ttl(keys.job(job.id)) == str(RETENTION)


async def test_a_job_with_a_deadline_expires_with_it(dapr: MemoryDapr, jobs: JobStore) -> None:
    job = _job()
    job = job.model_copy(update={"deadline": job.created_at + timedelta(seconds=100)})
    await jobs.create(job)
    assert 100 <= int(dapr.ttl(keys.job(job.id)) or 0) <= 100 + RETENTION


async def test_a_fence_before_the_store_keeps_the_record_out_for_good(jobs: JobStore) -> None:
    job = _job()

    assert await jobs.fence(job.id) is None
    with pytest.raises(Fenced):
        await jobs.create(job)
    assert await jobs.get(job.id) is None
    assert await jobs.statuses([job.id]) == {job.id: None}


async def test_a_store_before_the_fence_wins_and_the_fence_returns_it(
    dapr: MemoryDapr, jobs: JobStore
) -> None:
    job = _job()
    await jobs.create(job)

    fenced = await jobs.fence(job.id)

    assert fenced is not None
    assert fenced.record == job
    assert dapr.ttl(keys.job(job.id)) != str(FENCE_TTL_SECONDS)  # the record, untouched


async def test_a_write_from_a_stale_read_is_refused(jobs: JobStore) -> None:
    job = _job()
    await jobs.create(job)
    first = await jobs.get(job.id)
    assert first is not None
    await jobs.replace(first.record.moved_to(JobStatus.RUNNING), first.etag)

    with pytest.raises(StaleRecord):
        await jobs.replace(first.record.moved_to(JobStatus.CANCELLED), first.etag)


async def test_update_decides_again_after_losing_a_race(dapr: MemoryDapr, jobs: JobStore) -> None:
    job = _job()
    await jobs.create(job)
    seen: list[JobStatus] = []
    raced = False

    def cancel(record: JobRecord) -> JobRecord | None:
        nonlocal raced
        seen.append(record.status)
        if not raced:  # another writer claims the job between this read and its write
            raced = True
            row = dapr.rows[("statestore", keys.job(job.id))]
            claimed = record.moved_to(JobStatus.RUNNING)
            row.value, row.version = claimed.model_dump_json().encode(), row.version + 1
        return None if record.status.terminal else record.moved_to(JobStatus.CANCELLED)

    updated = await jobs.update(job.id, cancel)

    assert seen == [JobStatus.QUEUED, JobStatus.RUNNING]
    assert updated is not None
    assert (updated.record.status, updated.written) == (JobStatus.CANCELLED, True)


async def test_an_update_with_nothing_to_change_writes_nothing(
    dapr: MemoryDapr, jobs: JobStore
) -> None:
    job = _job()
    await jobs.create(job)
    writes = dapr.calls["save_state"]

    updated = await jobs.update(job.id, lambda _: None)

    assert updated is not None
    assert (updated.record, updated.written) == (job, False)
    assert dapr.calls["save_state"] == writes


async def test_a_finished_job_takes_its_upload_with_it(dapr: MemoryDapr, jobs: JobStore) -> None:
    ref = FileRef(key=keys.file("f"), content_type="image/png", size=3, chunks=1, sha256="0")
    await jobs.files.put_chunk(ref.key, 0, b"png", ttl_seconds=600)
    job = _job(input=JobInput(file=ref))
    await jobs.create(job)

    assert await jobs.update(job.id, _succeeded) is not None

    assert not dapr.has(keys.file_chunk(ref.key, 0))


async def test_a_key_hammered_past_the_bound_gives_up(dapr: MemoryDapr, state: State) -> None:
    await state.insert("k", "0")

    def always_raced(data: bytes | None) -> Write:
        row = dapr.rows[("statestore", "k")]
        row.version += 1  # someone else wrote it since this read
        return Write(b"1")

    with pytest.raises(Contended):
        await state.update("k", always_raced)
    assert dapr.calls["get_state"] == UPDATE_TRIES


async def test_an_insert_refused_with_a_generic_error_is_confirmed_by_a_read(
    dapr: MemoryDapr, state: State
) -> None:
    """Redis refuses a first-write on a taken key with a generic error, not ABORTED."""
    await state.insert("k", "mine")
    dapr.fail_next.append("save_state")

    with pytest.raises(KeyTaken):
        await state.insert("k", "theirs")

    # Refused, yet absent when read: the key may have gone in between, so it tries again...
    dapr.fail_next.append("save_state")
    await state.insert("gone-since", '"x"')
    assert dapr.value("gone-since") == "x"
    # ...and a store that keeps failing is a real failure.
    dapr.fail_next.extend(["save_state"] * 3)
    with pytest.raises(DaprInternalError):
        await state.insert("other", "x")


async def test_concurrent_reads_and_unguarded_writes_go_in_bulk_calls(
    dapr: MemoryDapr, state: State
) -> None:
    """Calls made while one is on its way are gathered: a lone call leaves at once, the
    ones queued behind it go together."""
    for i in range(20):
        await state.insert(f"k{i}", f'"{i}"')
    dapr.calls.clear()

    items = await asyncio.gather(*(state.get(f"k{i}") for i in range(20)))
    await asyncio.gather(*(state.put(f"k{i}", f'"{i}+"') for i, item in enumerate(items) if item))

    assert [dapr.value(f"k{i}") for i in range(20)] == [f"{i}+" for i in range(20)]
    # The first of each burst alone, then the rest in at most two bulk calls per lane.
    assert dapr.calls["get_state"] + dapr.calls["get_bulk_state"] <= 5
    assert dapr.calls["save_state"] + dapr.calls["save_bulk_state"] <= 5


async def test_a_guarded_write_that_went_in_is_never_reported_lost(
    dapr: MemoryDapr, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer moves a key on the moment a write lands (status adding a watcher to a
    job the worker just claimed). Had the write gone in a bulk call that failed for another
    item, reading the key back would show someone else's value, and the claim that went in
    would be reported lost: its job left running under nobody until the lease ran out."""
    for key in ("claimed", "stale"):
        await state.insert(key, '"queued"')
    claimed, stale = await asyncio.gather(state.get("claimed"), state.get("stale"))
    assert claimed
    assert stale
    await state.replace("stale", '"someone else"', stale.etag)

    def moved_on_after(write: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def then_another_writer(*args: Any, **kwargs: Any) -> None:
            try:
                await write(*args, **kwargs)
            finally:
                if dapr.value("claimed") == "running":
                    dapr.put("claimed", '"running, watched"')

        return then_another_writer

    monkeypatch.setattr(dapr, "save_state", moved_on_after(dapr.save_state))
    monkeypatch.setattr(dapr, "save_bulk_state", moved_on_after(dapr.save_bulk_state))

    outcomes = await asyncio.gather(
        state.replace("claimed", '"running"', claimed.etag),
        state.replace("stale", '"running"', stale.etag),
        state.insert("new", '"queued"'),
        return_exceptions=True,
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], Conflict)
    assert outcomes[2] is None
    assert dapr.value("claimed") == "running, watched"


async def test_a_conflict_in_a_bulk_write_fails_only_its_own_write(
    dapr: MemoryDapr, state: State
) -> None:
    for key in ("a", "b", "c"):
        await state.insert(key, '"0"')
    a, b, c = await asyncio.gather(state.get("a"), state.get("b"), state.get("c"))
    assert a
    assert b
    assert c
    await state.replace("b", '"someone else"', b.etag)  # b moves on before the batch

    outcomes = await asyncio.gather(
        state.replace("a", '"mine"', a.etag),
        state.replace("b", '"mine"', b.etag),
        state.replace("c", '"mine"', c.etag),
        return_exceptions=True,
    )

    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], Conflict)
    assert (dapr.value("a"), dapr.value("b"), dapr.value("c")) == ("mine", "someone else", "mine")


async def test_racing_inserts_of_the_same_value_in_one_batch_have_one_winner(
    state: State,
) -> None:
    """A failed bulk save is attributed by reading the keys back; two inserts of one key with
    the same bytes must not both pass for the one that went in."""
    outcomes = await asyncio.gather(
        state.put("other", "y"),
        state.insert("k", "same"),
        state.insert("k", "same"),
        return_exceptions=True,
    )

    assert outcomes[0] is None
    assert sorted(type(o).__name__ for o in outcomes[1:]) == ["KeyTaken", "NoneType"]


async def test_bulk_calls_stay_under_the_sidecars_message_limit(dapr: MemoryDapr) -> None:
    """A tenant's ten thousand queued jobs read in one call made an answer over daprd's
    4 MiB limit, and every submit of that tenant failed 503 (seen in the bench's overload
    run); concurrent upload chunks saved in one call would make a request over it."""
    dapr.max_message_bytes = 64 * 1024
    state = State(cast(DaprClient, dapr))
    jobs = JobStore(state, retention_seconds=RETENTION)
    queued = [_job() for _ in range(300)]  # a few hundred bytes each: over 64 KiB together
    await asyncio.gather(*(jobs.create(job) for job in queued))

    statuses = await jobs.statuses([job.id for job in queued])

    assert statuses == {job.id: JobStatus.QUEUED for job in queued}
    chunks = {f"chunk:{i}": bytes([i]) * 40_000 for i in range(6)}
    await asyncio.gather(*(state.put(key, data) for key, data in chunks.items()))
    assert {key: dapr.rows[("statestore", key)].value for key in chunks} == chunks
    assert (await state.get_many(chunks)).keys() == chunks.keys()
