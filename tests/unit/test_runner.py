"""The worker's claim protocol, against an in-memory fake of the job store.

FakeJobRecords keeps Dapr's ETag rules (first-write insert, ETag-checked replace); the
integration tests run the same code on real daprd and Redis. Tasks are fakes too, so these
tests say nothing about models, only about who runs what and what gets stored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import cast

import anyio
import httpx2
import openai
import pytest

from apps.worker import tasks as worker_tasks
from apps.worker.gateway import Gateway
from apps.worker.models import ModelClient
from apps.worker.runner import Delivery, Runner, give_up
from jobrelay.contract import JobError, JobInput, JobRecord, JobResult, JobStatus, Usage, utcnow
from jobrelay.files import FileStore
from jobrelay.store import StaleRecord, Versioned

pytestmark = pytest.mark.anyio

_NO_GATEWAY = cast(Gateway, None)  # the fake tasks never touch a model
_NO_FILES = cast(FileStore, None)  # and these jobs have text inputs, never files
TaskFn = Callable[[JobRecord, ModelClient], Awaitable[JobResult]]
InstallTask = Callable[[TaskFn], None]


class FakeJobRecords:
    """In-memory stand-in for JobStore with the same ETag semantics."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[JobRecord, int]] = {}
        self.writes = 0

    async def get(self, job_id: str) -> Versioned | None:
        await anyio.lowlevel.checkpoint()  # a real store call yields to other deliveries
        row = self.rows.get(job_id)
        return Versioned(row[0], str(row[1])) if row else None

    async def create(self, record: JobRecord) -> None:
        if record.id in self.rows:
            raise StaleRecord(record.id)
        self.rows[record.id] = (record, 1)

    async def replace(self, record: JobRecord, etag: str) -> None:
        await anyio.lowlevel.checkpoint()
        current = self.rows.get(record.id)
        if current is None or str(current[1]) != etag:
            raise StaleRecord(record.id)
        self.writes += 1
        self.rows[record.id] = (record, current[1] + 1)

    async def note(self, record: JobRecord, etag: str) -> None:
        await self.replace(record, etag)

    def record(self, job_id: str) -> JobRecord:
        return self.rows[job_id][0]


class CountingTask:
    """A fake task that counts its calls and can wait, fail or run a hook mid-call."""

    def __init__(self, error: Exception | None = None, seconds: float = 0.0) -> None:
        self.calls = 0
        self.error = error
        self.seconds = seconds
        self.during: Callable[[JobRecord], Awaitable[None]] | None = None

    async def __call__(self, record: JobRecord, _: ModelClient) -> JobResult:
        self.calls += 1
        if self.during:
            await self.during(record)
        await anyio.sleep(self.seconds)
        if self.error:
            raise self.error
        usage = Usage(prompt_tokens=1, total_tokens=1)
        return JobResult(output={"echo": record.input.text}, model="fake", usage=usage)


class Events:
    """Collects what the runner would publish on `job-events`."""

    def __init__(self) -> None:
        self.published: list[JobRecord] = []

    async def __call__(self, record: JobRecord) -> None:
        self.published.append(record)

    def statuses(self) -> list[JobStatus]:
        return [r.status for r in self.published]


@pytest.fixture
def store() -> FakeJobRecords:
    return FakeJobRecords()


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def runner(store: FakeJobRecords, events: Events) -> Runner:
    return Runner(store, _NO_FILES, _NO_GATEWAY, events)


@pytest.fixture
def use_task(monkeypatch: pytest.MonkeyPatch) -> InstallTask:
    def install(fn: TaskFn) -> None:
        monkeypatch.setitem(worker_tasks.RUNNERS, "classify", fn)

    return install


async def _stored(store: FakeJobRecords, **changes: object) -> JobRecord:
    record = JobRecord.new("classify", JobInput(text="hello"), {}, {}).model_copy(update=changes)
    await store.create(record)
    return record


async def test_a_queued_job_runs_once_and_succeeds(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store)

    assert await runner.deliver(record.id) is Delivery.SUCCESS

    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 1, 1)
    assert done.result is not None
    assert done.result.output == {"echo": "hello"}
    assert done.started_at is not None
    assert done.finished_at is not None


async def test_a_duplicate_of_a_finished_job_is_acknowledged_without_running(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store)
    await runner.deliver(record.id)
    writes = store.writes

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    assert task.calls == 1
    assert store.writes == writes


async def test_concurrent_deliveries_of_one_job_call_the_model_once(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask(seconds=0.05)
    use_task(task)
    record = await _stored(store)
    outcomes: list[Delivery] = []

    async def deliver() -> None:
        outcomes.append(await runner.deliver(record.id))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(deliver)

    assert task.calls == 1
    assert outcomes == [Delivery.SUCCESS] * 5
    assert store.record(record.id).status is JobStatus.SUCCEEDED


async def test_a_dead_workers_claim_is_taken_over_after_its_lease(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(
        store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=utcnow() - timedelta(1)
    )

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 2, 1)


async def test_a_job_past_its_deadline_before_starting_expires_without_a_model_call(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store, deadline=utcnow() - timedelta(seconds=1))

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    assert store.record(record.id).status is JobStatus.EXPIRED
    assert task.calls == 0


async def test_a_retried_job_past_its_deadline_fails_with_deadline_exceeded(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store, attempts=1, deadline=utcnow() - timedelta(seconds=1))

    await runner.deliver(record.id)
    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "deadline_exceeded"


def _unreachable() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx2.Request("POST", "http://model.test/v1"))


async def test_a_transient_failure_hands_the_job_back_and_asks_for_redelivery(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    use_task(CountingTask(error=_unreachable()))
    record = await _stored(store)

    assert await runner.deliver(record.id) is Delivery.RETRY
    back = store.record(record.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 1)
    assert back.error is not None
    assert back.error.code == "model_unavailable"
    assert back.lease_expires_at is None


async def test_a_fatal_failure_fails_the_job_at_once_with_the_reason(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    use_task(CountingTask(error=ValueError("bad vector")))
    record = await _stored(store)

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("internal_error", False)
    assert "bad vector" in failed.error.message


async def test_a_result_from_a_lost_claim_is_discarded(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask()

    async def taken_over(record: JobRecord) -> None:
        # Another worker takes the job over while this one is still calling the model.
        versioned = await store.get(record.id)
        assert versioned is not None
        newer = versioned.record.moved_to(JobStatus.RUNNING, attempts=record.attempts + 1)
        await store.replace(newer, versioned.etag)

    task.during = taken_over
    use_task(task)
    record = await _stored(store)

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    current = store.record(record.id)
    assert (current.status, current.attempts, current.result) == (JobStatus.RUNNING, 2, None)


async def test_a_message_without_a_record_is_acknowledged(
    runner: Runner, store: FakeJobRecords
) -> None:
    assert await runner.deliver("0" * 32) is Delivery.SUCCESS


async def test_a_dead_letter_fails_the_job_with_its_last_error(store: FakeJobRecords) -> None:
    last = JobError(code="model_error", message="model answered 500", retryable=True)
    record = await _stored(store, attempts=9, error=last)

    await give_up(store, record.id, Events())

    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "model_error"
    assert "9 attempt" in failed.error.message
    assert "model answered 500" in failed.error.message


async def test_a_dead_letter_for_a_finished_job_changes_nothing(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store)
    await runner.deliver(record.id)

    await give_up(store, record.id, Events())
    assert store.record(record.id).status is JobStatus.SUCCEEDED


async def test_every_status_the_worker_writes_is_published(
    runner: Runner, store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store)

    await runner.deliver(record.id)

    assert events.statuses() == [JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert [r.seq for r in events.published] == [1, 2]


async def test_a_job_cancelled_during_its_model_call_stays_cancelled(
    runner: Runner, store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    task = CountingTask()

    async def cancelled_meanwhile(record: JobRecord) -> None:
        versioned = await store.get(record.id)
        assert versioned is not None
        await store.replace(versioned.record.moved_to(JobStatus.CANCELLED), versioned.etag)

    task.during = cancelled_meanwhile
    use_task(task)
    record = await _stored(store)

    assert await runner.deliver(record.id) is Delivery.SUCCESS
    final = store.record(record.id)
    assert (final.status, final.result) == (JobStatus.CANCELLED, None)
    assert JobStatus.SUCCEEDED not in events.statuses()


async def test_a_model_call_is_cut_off_at_the_jobs_deadline(
    runner: Runner, store: FakeJobRecords, use_task: InstallTask
) -> None:
    task = CountingTask(seconds=5)
    use_task(task)
    record = await _stored(store, deadline=utcnow() + timedelta(seconds=0.2))

    with anyio.fail_after(2):
        assert await runner.deliver(record.id) is Delivery.SUCCESS

    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("deadline_exceeded", False)


def _short_leases(store: FakeJobRecords, events: Events) -> Runner:
    return Runner(store, _NO_FILES, _NO_GATEWAY, events, lease_seconds=0.3, hold_seconds=5)


async def test_a_long_call_keeps_its_claim_by_renewing_the_lease(
    store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=1.0))  # three leases long
    record = await _stored(store)
    runner = _short_leases(store, events)
    duplicate_outcome: list[Delivery] = []

    async with anyio.create_task_group() as group:
        group.start_soon(runner.deliver, record.id)
        await anyio.sleep(0.6)  # past the first lease: only renewal keeps the claim alive

        async def duplicate() -> None:
            duplicate_outcome.append(await runner.deliver(record.id))

        group.start_soon(duplicate)

    done = store.record(record.id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert duplicate_outcome == [Delivery.SUCCESS]  # held until the job ended, then done


async def test_a_duplicate_of_a_dead_claim_waits_for_the_lease_then_takes_over(
    store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    lapses = utcnow() + timedelta(seconds=0.3)
    record = await _stored(store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=lapses)

    with anyio.fail_after(3):
        assert await _short_leases(store, events).deliver(record.id) is Delivery.SUCCESS

    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 2, 1)


async def test_a_held_duplicate_goes_back_to_the_broker_after_its_hold(
    store: FakeJobRecords, events: Events
) -> None:
    live = utcnow() + timedelta(minutes=5)
    record = await _stored(store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=live)
    runner = Runner(store, _NO_FILES, _NO_GATEWAY, events, lease_seconds=0.3, hold_seconds=0.2)

    assert await runner.deliver(record.id) is Delivery.RETRY
    assert store.record(record.id).status is JobStatus.RUNNING


async def test_a_cancel_stops_the_running_model_call(
    store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=5))
    record = await _stored(store)
    runner = _short_leases(store, events)
    outcome: list[Delivery] = []

    async def deliver() -> None:
        outcome.append(await runner.deliver(record.id))

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(deliver)
        await anyio.sleep(0.05)
        versioned = await store.get(record.id)
        assert versioned is not None
        await store.replace(versioned.record.moved_to(JobStatus.CANCELLED), versioned.etag)

    # The renewal (every 0.1 s here) finds the claim gone and stops the 5 s call.
    assert time.monotonic() - started < 1
    assert outcome == [Delivery.SUCCESS]
    assert store.record(record.id).status is JobStatus.CANCELLED


async def test_a_stopping_worker_hands_its_job_back(
    store: FakeJobRecords, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=5))
    record = await _stored(store)
    runner = _short_leases(store, events)

    with anyio.move_on_after(0.2):  # the worker's grace period running out
        await runner.deliver(record.id)
    await anyio.sleep(0.1)  # the hand-back is shielded, so it completes after the cancel

    back = store.record(record.id)
    assert (back.status, back.lease_expires_at) == (JobStatus.QUEUED, None)
    assert back.error is not None
    assert back.error.code == "worker_stopped"
