"""The worker's claim protocol, on the real job store over an in-memory FAKE of the Dapr
client (tests/doubles/memory_dapr.py, which keeps Dapr's ETag rules); the integration tests
run the same code on real daprd and Redis. Tasks are fakes too, so these tests say nothing
about models, only about who runs what and what gets stored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

import anyio
import httpx2
import openai
import pytest
from dapr.aio.clients import DaprClient

from apps.worker.gateway import Gateway
from apps.worker.model_client import ModelClient
from apps.worker.outcomes import give_up
from apps.worker.runner import Runner
from apps.worker.settings import WorkerSettings
from jobrelay import keys
from jobrelay.contract import (
    JobError,
    JobInput,
    JobMessage,
    JobRecord,
    JobResult,
    JobStatus,
    Usage,
    utcnow,
)
from jobrelay.state import State
from jobrelay.store import Fenced, JobStore, Versioned
from jobrelay.subscriptions import Delivery
from tests.doubles.memory_dapr import MemoryDapr

pytestmark = pytest.mark.anyio

_NO_GATEWAY = cast(Gateway, None)  # the fake tasks never touch a model
TaskFn = Callable[[JobRecord, ModelClient], Awaitable[JobResult]]
InstallTask = Callable[[TaskFn], None]
# What the runners under test run, by task name: the fake tasks `use_task` installs.
_RUNNERS: dict[str, TaskFn] = {}


class Jobs(JobStore):
    """The real JobStore, with a synchronous look at what the fake holds."""

    def __init__(self, dapr: MemoryDapr) -> None:
        super().__init__(State(cast(DaprClient, dapr)), retention_seconds=60)
        self.dapr = dapr

    def record(self, job_id: str) -> JobRecord:
        return JobRecord.model_validate(self.dapr.value(keys.job(job_id)))

    @property
    def writes(self) -> int:
        return self.dapr.calls["save_state"]


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
def store() -> Jobs:
    return Jobs(MemoryDapr())


@pytest.fixture
def events() -> Events:
    return Events()


def _settings(**overrides: Any) -> WorkerSettings:
    return WorkerSettings.model_validate({"port": 1, **overrides})


@pytest.fixture
def runner(store: Jobs, events: Events) -> Runner:
    return Runner(store, _NO_GATEWAY, events, _settings(), runners=_RUNNERS)


@pytest.fixture
def use_task(monkeypatch: pytest.MonkeyPatch) -> InstallTask:
    def install(fn: TaskFn) -> None:
        monkeypatch.setitem(_RUNNERS, "classify", fn)

    return install


async def _stored(store: Jobs, **changes: object) -> JobRecord:
    record = JobRecord.new("classify", JobInput(text="hello"), {}, {}).model_copy(update=changes)
    await store.create(record)
    return record


def _message(job_id: str, sent_at: datetime | None = None) -> JobMessage:
    return JobMessage(job_id=job_id, task="classify", sent_at=sent_at or utcnow())


async def test_a_queued_job_runs_once_and_succeeds(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store)

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS

    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 1, 1)
    assert done.result is not None
    assert done.result.output == {"echo": "hello"}
    assert done.started_at is not None
    assert done.finished_at is not None


async def test_a_duplicate_of_a_finished_job_is_acknowledged_without_running(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store)
    await runner.deliver(_message(record.id))
    writes = store.writes

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    assert task.calls == 1
    assert store.writes == writes


async def test_concurrent_deliveries_of_one_job_call_the_model_once(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask(seconds=0.05)
    use_task(task)
    record = await _stored(store)
    outcomes: list[Delivery] = []

    async def deliver() -> None:
        outcomes.append(await runner.deliver(_message(record.id)))

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(deliver)

    assert task.calls == 1
    assert outcomes == [Delivery.SUCCESS] * 5
    assert store.record(record.id).status is JobStatus.SUCCEEDED


async def test_a_dead_workers_claim_is_taken_over_after_its_lease(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(
        store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=utcnow() - timedelta(1)
    )

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 2, 1)


async def test_a_job_past_its_deadline_before_starting_expires_without_a_model_call(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = await _stored(store, deadline=utcnow() - timedelta(seconds=1))

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    assert store.record(record.id).status is JobStatus.EXPIRED
    assert task.calls == 0


async def test_a_retried_job_past_its_deadline_fails_with_deadline_exceeded(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store, attempts=1, deadline=utcnow() - timedelta(seconds=1))

    await runner.deliver(_message(record.id))
    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "deadline_exceeded"


def _unreachable() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx2.Request("POST", "http://model.test/v1"))


async def test_a_transient_failure_hands_the_job_back_and_asks_for_redelivery(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    use_task(CountingTask(error=_unreachable()))
    record = await _stored(store)

    assert await runner.deliver(_message(record.id)) is Delivery.RETRY
    back = store.record(record.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 1)
    assert back.error is not None
    assert back.error.code == "model_unavailable"
    assert back.lease_expires_at is None


async def test_a_fatal_failure_fails_the_job_at_once_with_the_reason(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    use_task(CountingTask(error=ValueError("bad vector")))
    record = await _stored(store)

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("internal_error", False)
    assert "bad vector" in failed.error.message


async def test_a_result_from_a_lost_claim_is_discarded(
    runner: Runner, store: Jobs, use_task: InstallTask
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

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    current = store.record(record.id)
    assert (current.status, current.attempts, current.result) == (JobStatus.RUNNING, 2, None)


async def test_a_message_that_comes_before_its_record_waits_for_it_and_runs_it(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    record = JobRecord.new("classify", JobInput(text="hello"), {}, {})
    outcome: list[Delivery] = []

    async def deliver() -> None:
        outcome.append(await runner.deliver(_message(record.id)))

    async with anyio.create_task_group() as group:
        group.start_soon(deliver)
        await anyio.sleep(0.05)  # intake published, and stores the record only now
        await store.create(record)

    assert outcome == [Delivery.SUCCESS]
    assert (store.record(record.id).status, task.calls) == (JobStatus.SUCCEEDED, 1)


async def test_a_record_that_never_comes_is_fenced_so_it_can_never_be_stored(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    runner = Runner(
        store, _NO_GATEWAY, events, _settings(arrival_grace_seconds=0.1), runners=_RUNNERS
    )
    record = JobRecord.new("classify", JobInput(text="hello"), {}, {})

    with anyio.fail_after(2):
        assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS

    with pytest.raises(Fenced):  # intake, late, cannot store it: its client gets a 503
        await store.create(record)
    assert await store.get(record.id) is None  # to a poll, an unknown job
    assert task.calls == 0


async def test_a_message_past_its_grace_with_no_record_is_fenced_at_once(
    runner: Runner, store: Jobs
) -> None:
    long_ago = utcnow() - timedelta(hours=2)  # say, a redelivery of a long-expired job

    with anyio.fail_after(1):
        assert await runner.deliver(_message("0" * 32, long_ago)) is Delivery.SUCCESS
    assert await store.get("0" * 32) is None


async def test_a_record_stored_just_as_the_grace_ends_wins_over_the_fence(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    """The fence is an insert too: whichever of the two writes comes first wins the key."""
    task = CountingTask()
    use_task(task)
    record = JobRecord.new("classify", JobInput(text="hello"), {}, {})
    runner = Runner(
        store, _NO_GATEWAY, events, _settings(arrival_grace_seconds=0.05), runners=_RUNNERS
    )
    original_fence = store.fence

    async def stored_first(job_id: str) -> Versioned | None:
        await store.create(record)  # intake's store lands between the last read and the fence
        return await original_fence(job_id)

    store.fence = stored_first  # type: ignore[method-assign]

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    assert (store.record(record.id).status, task.calls) == (JobStatus.SUCCEEDED, 1)


async def test_a_dead_letter_fails_the_job_with_its_last_error(store: Jobs) -> None:
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
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store)
    await runner.deliver(_message(record.id))

    await give_up(store, record.id, Events())
    assert store.record(record.id).status is JobStatus.SUCCEEDED


async def test_every_status_the_worker_writes_is_published(
    runner: Runner, store: Jobs, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask())
    record = await _stored(store)

    await runner.deliver(_message(record.id))

    assert events.statuses() == [JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert [r.seq for r in events.published] == [1, 2]


async def test_a_job_cancelled_during_its_model_call_stays_cancelled(
    runner: Runner, store: Jobs, events: Events, use_task: InstallTask
) -> None:
    task = CountingTask()

    async def cancelled_meanwhile(record: JobRecord) -> None:
        versioned = await store.get(record.id)
        assert versioned is not None
        await store.replace(versioned.record.moved_to(JobStatus.CANCELLED), versioned.etag)

    task.during = cancelled_meanwhile
    use_task(task)
    record = await _stored(store)

    assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS
    final = store.record(record.id)
    assert (final.status, final.result) == (JobStatus.CANCELLED, None)
    assert JobStatus.SUCCEEDED not in events.statuses()


async def test_a_model_call_is_cut_off_at_the_jobs_deadline(
    runner: Runner, store: Jobs, use_task: InstallTask
) -> None:
    task = CountingTask(seconds=5)
    use_task(task)
    record = await _stored(store, deadline=utcnow() + timedelta(seconds=0.2))

    with anyio.fail_after(2):
        assert await runner.deliver(_message(record.id)) is Delivery.SUCCESS

    failed = store.record(record.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.retryable) == ("deadline_exceeded", False)


def _short_leases(store: Jobs, events: Events) -> Runner:
    settings = _settings(claim_lease_seconds=0.3, duplicate_hold_seconds=5)
    return Runner(store, _NO_GATEWAY, events, settings, runners=_RUNNERS)


async def test_a_long_call_keeps_its_claim_by_renewing_the_lease(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=1.0))  # three leases long
    record = await _stored(store)
    runner = _short_leases(store, events)
    duplicate_outcome: list[Delivery] = []

    async with anyio.create_task_group() as group:
        group.start_soon(runner.deliver, _message(record.id))
        await anyio.sleep(0.6)  # past the first lease: only renewal keeps the claim alive

        async def duplicate() -> None:
            duplicate_outcome.append(await runner.deliver(_message(record.id)))

        group.start_soon(duplicate)

    done = store.record(record.id)
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)
    assert duplicate_outcome == [Delivery.SUCCESS]  # held until the job ended, then done


async def test_a_duplicate_of_a_dead_claim_waits_for_the_lease_then_takes_over(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    task = CountingTask()
    use_task(task)
    lapses = utcnow() + timedelta(seconds=0.3)
    record = await _stored(store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=lapses)

    with anyio.fail_after(3):
        assert await _short_leases(store, events).deliver(_message(record.id)) is Delivery.SUCCESS

    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 2, 1)


async def test_a_held_duplicate_goes_back_to_the_broker_after_its_hold(
    store: Jobs, events: Events
) -> None:
    live = utcnow() + timedelta(minutes=5)
    record = await _stored(store, status=JobStatus.RUNNING, attempts=1, lease_expires_at=live)
    settings = _settings(claim_lease_seconds=0.3, duplicate_hold_seconds=0.2)
    runner = Runner(store, _NO_GATEWAY, events, settings, runners=_RUNNERS)

    assert await runner.deliver(_message(record.id)) is Delivery.RETRY
    assert store.record(record.id).status is JobStatus.RUNNING


async def test_a_cancel_stops_the_running_model_call(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=5))
    record = await _stored(store)
    runner = _short_leases(store, events)
    outcome: list[Delivery] = []

    async def deliver() -> None:
        outcome.append(await runner.deliver(_message(record.id)))

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
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    use_task(CountingTask(seconds=5))
    record = await _stored(store)
    runner = _short_leases(store, events)

    with anyio.move_on_after(0.2):  # the worker's grace period running out
        await runner.deliver(_message(record.id))
    await anyio.sleep(0.1)  # the hand-back is shielded, so it completes after the cancel

    back = store.record(record.id)
    assert (back.status, back.lease_expires_at) == (JobStatus.QUEUED, None)
    assert back.error is not None
    assert back.error.code == "worker_stopped"


async def test_a_renewal_that_fails_for_a_moment_is_tried_again_and_the_claim_holds(
    store: Jobs, events: Events, use_task: InstallTask
) -> None:
    """A store that fails a read mid-call must not end the renewals: the lease would lapse
    and a redelivery would run the job a second time."""
    task = CountingTask(seconds=1.2)  # four leases long
    use_task(task)
    record = await _stored(store)
    runner = _short_leases(store, events)
    duplicate: list[Delivery] = []

    async with anyio.create_task_group() as group:
        group.start_soon(runner.deliver, _message(record.id))
        await anyio.sleep(0.05)
        store.dapr.fail_next.append("get_state")  # the first renewal's read fails

        async def late_duplicate() -> None:
            await anyio.sleep(0.55)  # past the first lease: only a renewal keeps the claim
            duplicate.append(await runner.deliver(_message(record.id)))

        group.start_soon(late_duplicate)

    done = store.record(record.id)
    assert (done.status, done.attempts, task.calls) == (JobStatus.SUCCEEDED, 1, 1)
    assert duplicate == [Delivery.SUCCESS]
