"""One delivery of a job: claim it, run its task, store the outcome.

The claim is an ETag-guarded write of `running` with `attempts` raised by one; `attempts` is
then the claim's token. Every later write rereads the record and goes through only if it
still shows this claim, so a duplicate delivery, a takeover after a dead worker, a cancel or
a late result can never overwrite a newer state.

A claim is a lease: the running worker renews it while the model works, and a claim whose
lease lapsed (its worker died) is taken over by the next delivery. A second delivery of a job
whose claim is alive (the broker redelivers long jobs) is held, not acknowledged: should the
running worker die, that delivery is what resumes the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum

from apps.worker.failures import describe
from apps.worker.gateway import Gateway
from apps.worker.inputs import materialize
from apps.worker.models import ModelClient
from apps.worker.tasks import RUNNERS, TaskRunner
from jobrelay import telemetry
from jobrelay.constants import CLAIM_LEASE_SECONDS, DUPLICATE_HOLD_SECONDS
from jobrelay.contract import JobError, JobRecord, JobResult, JobStatus, ModelCall, utcnow
from jobrelay.files import FileStore
from jobrelay.store import JobRecords, StaleRecord

log = logging.getLogger(__name__)

# A write that loses an ETag race rereads and decides again; more losses than this in a row
# mean something else is hammering the record, and the broker's redelivery takes over.
_WRITE_TRIES = 3

OnChange = Callable[[JobRecord], Awaitable[None]]
Change = Callable[[JobRecord], JobRecord]


class Delivery(StrEnum):
    """What the worker tells Dapr about a message."""

    SUCCESS = "SUCCESS"  # done with it (including duplicates that need nothing)
    RETRY = "RETRY"  # deliver again later, per the resiliency policy
    DROP = "DROP"  # unusable; goes to the dead-letter topic


class DeadlinePassed(Exception):
    """The job's deadline came while its model call was running."""


class LiveClaim(Exception):
    """Another delivery holds a live claim on the job."""


# The error a job carries while handed back by a worker that stopped mid-job.
_STOPPED = JobError(
    code="worker_stopped",
    message="the worker stopped while running the job; it will run again",
    retryable=True,
)


class Runner:
    def __init__(
        self,
        store: JobRecords,
        files: FileStore,
        gateway: Gateway,
        on_change: OnChange,
        lease_seconds: float = CLAIM_LEASE_SECONDS,
        hold_seconds: float = DUPLICATE_HOLD_SECONDS,
    ) -> None:
        self._store = store
        self._files = files
        self._gateway = gateway
        self._on_change = on_change  # publishes the job event of every status this writes
        self._lease = lease_seconds
        self._hold = hold_seconds

    async def deliver(self, job_id: str) -> Delivery:
        loop = asyncio.get_running_loop()
        hold_until, races = loop.time() + self._hold, 0
        while True:
            try:
                claimed = await self._claim(job_id)
            except StaleRecord:
                races += 1
                if races >= _WRITE_TRIES:
                    return Delivery.RETRY
                continue
            except LiveClaim:
                # Held, not acknowledged: if the running worker dies, this copy resumes the
                # job once the lease lapses. Past the hold, the broker keeps it (RETRY).
                if loop.time() >= hold_until:
                    return Delivery.RETRY
                await asyncio.sleep(min(5.0, self._lease / 4))
                continue
            if claimed is None:
                return Delivery.SUCCESS
            # In the job's trace even when the delivery came without its context.
            with telemetry.job_span(f"run {claimed.task}", claimed.id, claimed.traceparent):
                await self._on_change(claimed)
                return await self._run(claimed)

    async def _claim(self, job_id: str) -> JobRecord | None:
        """The record, now `running` under this delivery; None if there is nothing to run."""
        versioned = await self._store.get(job_id)
        if versioned is None:
            log.warning("job_id=%s has no record (expired or never stored); acknowledged", job_id)
            return None
        record, now = versioned.record, utcnow()
        if record.status.terminal:
            log.info("job_id=%s already %s; duplicate delivery acknowledged", job_id, record.status)
            return None
        if (
            record.status is JobStatus.RUNNING
            and record.lease_expires_at
            and record.lease_expires_at > now
        ):
            log.info("job_id=%s has a live claim elsewhere; holding this delivery", job_id)
            raise LiveClaim(job_id)
        if record.deadline and now >= record.deadline:
            ended = _past_deadline(record)
            await self._store.replace(ended, versioned.etag)
            log.info(
                "job_id=%s task=%s status=%s deadline=%s",
                job_id,
                record.task,
                ended.status,
                record.deadline.isoformat(),
            )
            await self._on_change(ended)
            return None
        claimed = record.moved_to(
            JobStatus.RUNNING,
            attempts=record.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=self._lease),
            # Queue wait is measured to the first start: the wait before a retry is the
            # backend's trouble, and shows in model_calls instead.
            queue_seconds=record.queue_seconds
            if record.attempts
            else (now - record.created_at).total_seconds(),
        )
        await self._store.replace(claimed, versioned.etag)
        log.info(
            "job_id=%s task=%s status=running attempt=%d queue_seconds=%.3f",
            job_id,
            record.task,
            claimed.attempts,
            claimed.queue_seconds or 0.0,
        )
        return claimed

    async def _run(self, claimed: JobRecord) -> Delivery:
        task = RUNNERS.get(claimed.task)
        if task is None:
            # Intake knows a task this worker does not (a rolling upgrade, a worker in another
            # language): retrying here cannot help.
            error = JobError(
                code="unknown_task",
                retryable=False,
                message=f"no worker here runs task {claimed.task!r}",
            )
            await self._finish(claimed, lambda r: r.moved_to(JobStatus.FAILED, error=error))
            return Delivery.SUCCESS
        models = ModelClient(self._gateway, claimed.task, claimed.deadline, claimed.attempts)
        work = asyncio.create_task(self._call(task, claimed, models))
        keeper = asyncio.create_task(self._keep_claim(claimed, work))
        try:
            result = await work
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # This worker is stopping (its grace period ran out): hand the job back so
                # the broker's redelivery runs it at once, without waiting for the lease.
                await asyncio.shield(self._hand_back(claimed, models.calls))
                raise
            log.warning("job_id=%s lost its claim mid-call; model call stopped", claimed.id)
            return Delivery.SUCCESS
        except Exception as exc:  # every failure of a task ends in a stored outcome
            return await self._failed(claimed, exc, models.calls)
        finally:
            keeper.cancel()
        stored = await self._finish(
            claimed,
            lambda r: r.moved_to(JobStatus.SUCCEEDED, result=result, error=None),
            models.calls,
        )
        log.info(
            "job_id=%s task=%s status=%s model=%s model_seconds=%.3f calls=%d",
            claimed.id,
            claimed.task,
            "succeeded" if stored else "discarded",
            result.model,
            sum(c.seconds for c in models.calls),
            len(models.calls),
        )
        return Delivery.SUCCESS

    async def _keep_claim(self, claimed: JobRecord, work: asyncio.Task[JobResult]) -> None:
        """Renew the lease while `work` runs; stop `work` if the claim is lost (a cancel, or a
        takeover after this worker looked dead): its result would be discarded anyway."""
        while True:
            await asyncio.sleep(self._lease / 3)
            if not await self._renew(claimed):
                work.cancel()
                return

    async def _renew(self, claimed: JobRecord) -> bool:
        for _ in range(_WRITE_TRIES):
            versioned = await self._store.get(claimed.id)
            if versioned is None or not _same_claim(versioned.record, claimed):
                return False
            until = utcnow() + timedelta(seconds=self._lease)
            renewed = versioned.record.model_copy(update={"lease_expires_at": until})
            try:
                await self._store.note(renewed, versioned.etag)
            except StaleRecord:
                continue
            return True
        return True  # lost every race to other writers: the claim still stands; try later

    async def _hand_back(self, claimed: JobRecord, calls: list[ModelCall]) -> None:
        handed = await self._finish(
            claimed,
            lambda r: r.moved_to(JobStatus.QUEUED, error=_STOPPED, lease_expires_at=None),
            calls,
        )
        log.warning("job_id=%s handed back (%s): the worker is stopping", claimed.id, handed)

    async def _call(self, task: TaskRunner, claimed: JobRecord, models: ModelClient) -> JobResult:
        """Run the task, cut off at the job's deadline."""
        remaining = (claimed.deadline - utcnow()).total_seconds() if claimed.deadline else None
        try:
            async with asyncio.timeout(remaining):
                return await task(await materialize(claimed, self._files), models)
        except TimeoutError as exc:
            if remaining is not None:
                raise DeadlinePassed(f"deadline {claimed.deadline} passed during the call") from exc
            raise

    async def _failed(self, claimed: JobRecord, exc: Exception, calls: list[ModelCall]) -> Delivery:
        if isinstance(exc, DeadlinePassed):
            error = JobError(code="deadline_exceeded", message=str(exc), retryable=False)
        else:
            error = describe(exc)
        retry = error.retryable
        log.warning(
            "job_id=%s task=%s attempt=%d failed (%s, retryable=%s): %s",
            claimed.id,
            claimed.task,
            claimed.attempts,
            error.code,
            retry,
            error.message,
        )
        status = JobStatus.QUEUED if retry else JobStatus.FAILED
        # Back to queued with the error kept, so the redelivery can claim it again and a
        # dead-lettered job still says what went wrong last.
        await self._finish(
            claimed, lambda r: r.moved_to(status, error=error, lease_expires_at=None), calls
        )
        return Delivery.RETRY if retry else Delivery.SUCCESS

    async def _finish(
        self, claimed: JobRecord, change: Change, calls: list[ModelCall] | None = None
    ) -> bool:
        """Apply `change` (and record this attempt's model `calls`) if the record still shows
        this claim; False if the claim was lost (taken over, or cancelled while the model
        ran: the outcome is then discarded)."""
        for _ in range(_WRITE_TRIES):
            versioned = await self._store.get(claimed.id)
            if versioned is None or not _same_claim(versioned.record, claimed):
                log.warning(
                    "job_id=%s attempt=%d lost its claim (%s); outcome discarded",
                    claimed.id,
                    claimed.attempts,
                    versioned.record.status if versioned else "gone",
                )
                return False
            changed = _with_calls(change(versioned.record), calls or [])
            try:
                await self._store.replace(changed, versioned.etag)
            except StaleRecord:
                continue
            await self._on_change(changed)
            return True
        raise StaleRecord(claimed.id)


def _with_calls(record: JobRecord, calls: list[ModelCall]) -> JobRecord:
    if not calls:
        return record
    spent = (record.model_seconds or 0.0) + sum(c.seconds for c in calls)
    return record.model_copy(
        update={"model_calls": [*record.model_calls, *calls], "model_seconds": spent}
    )


def _same_claim(current: JobRecord, claimed: JobRecord) -> bool:
    return current.status is JobStatus.RUNNING and current.attempts == claimed.attempts


def _past_deadline(record: JobRecord) -> JobRecord:
    if record.attempts == 0:
        return record.moved_to(JobStatus.EXPIRED)
    return record.moved_to(
        JobStatus.FAILED,
        error=JobError(
            code="deadline_exceeded",
            message=f"deadline {record.deadline} passed before the job could finish",
            retryable=False,
        ),
    )


async def give_up(store: JobRecords, job_id: str, on_change: OnChange) -> bool:
    """Mark a dead-lettered job failed, with the last error it recorded; False if it was
    not left to fail (gone, already final, or still running under a live claim)."""
    for _ in range(_WRITE_TRIES):
        versioned = await store.get(job_id)
        if versioned is None or versioned.record.status.terminal:
            return False
        record = versioned.record
        lease = record.lease_expires_at
        if record.status is JobStatus.RUNNING and lease and lease > utcnow():
            # A held duplicate gave up waiting while the job still runs: its worker finishes.
            log.info("job_id=%s dead letter of a job that is running; left to its worker", job_id)
            return False
        last = record.error
        error = JobError(
            code=last.code if last else "retries_exhausted",
            message=f"gave up after {record.attempts} attempt(s)"
            + (f"; last error: {last.message}" if last else ""),
            retryable=True,
        )
        failed = record.moved_to(JobStatus.FAILED, error=error)
        try:
            await store.replace(failed, versioned.etag)
        except StaleRecord:
            continue
        log.warning(
            "job_id=%s task=%s status=failed dead-lettered: %s", job_id, record.task, error.message
        )
        await on_change(failed)
        return True
    return False
