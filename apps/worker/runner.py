"""One delivery of a job: wait for its record, claim it, run its task, store the outcome.

The claim is an ETag-guarded write of `running` with `attempts` raised by one; `attempts` is
then the claim's token. Every later write goes through the state layer's read-modify-write
and only if the record still shows this claim, so a duplicate delivery, a takeover after a
dead worker, a cancel or a late result can never overwrite a newer state.

A claim is a lease: the running worker renews it while the job runs, and a claim whose lease
lapsed (its worker died) is taken over by the next delivery. A second delivery of a job
whose claim is alive (the broker redelivers long jobs) is held, not acknowledged: should the
running worker die, that delivery is what resumes the job.

Intake publishes a job's message before it stores the record (apps/intake/submission.py), so
a message may arrive first: the delivery waits for the record until the message's grace
ends, then fences the job's key (jobrelay.store), and a record that comes later can never be
stored. Every job that got a 202 thus has both its record and its message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

from apps.worker.fair_gate import Turn
from apps.worker.gateway import Gateway, ModelBudgetSpent
from apps.worker.leases import keep_claim
from apps.worker.materialize import materialize
from apps.worker.model_client import ModelClient
from apps.worker.outcomes import (
    STOPPED,
    DeadlinePassed,
    OnChange,
    error_of,
    past_deadline,
    same_claim,
    with_calls,
)
from apps.worker.settings import WorkerSettings
from apps.worker.streaming import DeltaWriter, Streams, flushed
from apps.worker.tasks import TaskRunner
from jobrelay import telemetry
from jobrelay.contract import (
    JobError,
    JobMessage,
    JobRecord,
    JobResult,
    JobStatus,
    ModelCall,
    utcnow,
)
from jobrelay.dead_letters import DeadLetters
from jobrelay.events import new_replica_id
from jobrelay.files import FileStore
from jobrelay.store import JobStore, StaleRecord, Versioned
from jobrelay.subscriptions import Delivery

log = logging.getLogger(__name__)

Change = Callable[[JobRecord], JobRecord]

# First pause before reading again for a record that is not there yet: it normally follows
# its message within milliseconds, so the pauses start short and double.
_FIRST_REREAD_SECONDS = 0.002
_MAX_REREAD_SECONDS = 0.5


class LiveClaim(Exception):
    """Another delivery holds a live claim on the job."""


class Runner:
    def __init__(
        self,
        jobs: JobStore,
        gateway: Gateway,
        on_change: OnChange,
        settings: WorkerSettings,
        dead_letters: DeadLetters | None = None,
        *,
        runners: Mapping[str, TaskRunner],
        streams: Streams | None = None,
    ) -> None:
        self._jobs = jobs
        self._streams = streams  # None: no task streams its text (tests without a store)
        self._runners = runners  # by task name (apps/worker/tasks)
        self._dead_letters = dead_letters
        self._files: FileStore = jobs.files
        self._gateway = gateway
        self._on_change = on_change  # logs, counts and tells watchers of every status written
        self._settings = settings
        # Written on every claim, so a record says which worker ran it when workers in
        # several languages share the topic (apps/worker-go runs the same contract).
        self.name = f"python/{new_replica_id('worker')}"
        # Events published without holding up the model call (a `running`), kept so the
        # event loop cannot drop them half-done.
        self._background: set[asyncio.Task[None]] = set()

    async def deliver(self, message: JobMessage) -> Delivery:
        versioned = await self._arrived(message)
        if versioned is None:
            return Delivery.SUCCESS
        loop = asyncio.get_running_loop()
        hold_until = loop.time() + self._settings.duplicate_hold_seconds
        while True:
            try:
                claimed = await self._claim(versioned)
            except StaleRecord:
                versioned = await self._jobs.get(message.job_id)
                if versioned is None:
                    return Delivery.SUCCESS
                continue
            except LiveClaim:
                # Held, not acknowledged: if the running worker dies, this copy resumes the
                # job once the lease lapses. Past the hold, the broker keeps it (RETRY).
                if loop.time() >= hold_until:
                    return Delivery.RETRY
                await asyncio.sleep(min(5.0, self._settings.claim_lease_seconds / 4))
                versioned = await self._jobs.get(message.job_id)
                if versioned is None:
                    return Delivery.SUCCESS
                continue
            if claimed is None:
                return Delivery.SUCCESS
            # In the job's trace even when the delivery came without its context.
            with telemetry.job_span(f"run {claimed.task}", claimed.id, claimed.traceparent):
                self._in_background(self._on_change(claimed))
                return await self._run(claimed)

    async def _arrived(self, message: JobMessage) -> Versioned | None:
        """The job's record, waited for while the message's grace lasts; None if there is
        none to run (fenced now, or gone: expired long after its job ended)."""
        grace_ends = message.sent_at + timedelta(seconds=self._settings.arrival_grace_seconds)
        pause = _FIRST_REREAD_SECONDS
        while True:
            versioned = await self._jobs.get(message.job_id)
            if versioned is not None:
                return versioned
            left = (grace_ends - utcnow()).total_seconds()
            if left <= 0:
                # Either the record arrives now and wins the key, or the tombstone does
                # and intake's store of it fails: never both, never neither.
                return await self._jobs.fence(message.job_id)
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_REREAD_SECONDS)

    async def _claim(self, versioned: Versioned) -> JobRecord | None:
        """The record, now `running` under this delivery; None if there is nothing to run."""
        record, now = versioned.record, utcnow()
        if record.status.terminal:
            log.info(
                "job_id=%s already %s; duplicate delivery acknowledged", record.id, record.status
            )
            return None
        lease = record.lease_expires_at
        if record.status is JobStatus.RUNNING and lease and lease > now:
            log.info("job_id=%s has a live claim elsewhere; holding this delivery", record.id)
            raise LiveClaim(record.id)
        if record.deadline and now >= record.deadline:
            ended = past_deadline(record)
            await self._jobs.replace(ended, versioned.etag)
            await self._on_change(ended)
            return None
        claimed = record.moved_to(
            JobStatus.RUNNING,
            attempts=record.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=self._settings.claim_lease_seconds),
            worker=self.name,
            # Queue wait is measured to the first start: the wait before a retry is the
            # backend's trouble, and shows in model_calls instead.
            queue_seconds=record.queue_seconds
            if record.attempts
            else (now - record.created_at).total_seconds(),
        )
        await self._jobs.replace(claimed, versioned.etag)
        return claimed

    async def _run(self, claimed: JobRecord) -> Delivery:
        task = self._runners.get(claimed.task)
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
        deltas = self._streams.writer(claimed) if self._streams is not None else None
        models = ModelClient(
            self._gateway,
            claimed.task,
            claimed.deadline,
            claimed.attempts,
            budget=self._settings.max_model_calls_per_job
            - (len(claimed.model_calls) - claimed.budget_start),
            deltas=deltas,
            turn=Turn(claimed.priority, claimed.tenant),
        )
        work = asyncio.create_task(self._call(task, claimed, models, deltas))
        keeper = asyncio.create_task(
            keep_claim(self._jobs, claimed, work, self._settings.claim_lease_seconds)
        )
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
        await self._finish(
            claimed,
            lambda r: r.moved_to(JobStatus.SUCCEEDED, result=result, error=None),
            models.calls,
        )
        return Delivery.SUCCESS

    async def _hand_back(self, claimed: JobRecord, calls: list[ModelCall]) -> None:
        handed = await self._finish(
            claimed,
            lambda r: r.moved_to(JobStatus.QUEUED, error=STOPPED, lease_expires_at=None),
            calls,
        )
        log.warning("job_id=%s handed back (%s): the worker is stopping", claimed.id, handed)

    async def _call(
        self,
        task: TaskRunner,
        claimed: JobRecord,
        models: ModelClient,
        deltas: DeltaWriter | None = None,
    ) -> JobResult:
        """Run the task, cut off at the job's deadline. A streaming task's last chunk is
        stored before its result is: a stream shows every delta before `succeeded`."""
        remaining = (claimed.deadline - utcnow()).total_seconds() if claimed.deadline else None
        try:
            async with asyncio.timeout(remaining), flushed(deltas):
                return await task(await materialize(claimed, self._files), models)
        except TimeoutError as exc:
            if remaining is not None:
                raise DeadlinePassed(f"deadline {claimed.deadline} passed during the call") from exc
            raise

    async def _failed(self, claimed: JobRecord, exc: Exception, calls: list[ModelCall]) -> Delivery:
        error = error_of(claimed, exc, calls)
        log.warning(
            "job_id=%s task=%s attempt=%d failed (%s, retryable=%s): %s",
            claimed.id,
            claimed.task,
            claimed.attempts,
            error.code,
            error.retryable,
            error.message,
        )
        status = JobStatus.QUEUED if error.retryable else JobStatus.FAILED
        # Back to queued with the error kept, so the redelivery can claim it again and a
        # dead-lettered job still says what went wrong last.
        ended = await self._finish(
            claimed, lambda r: r.moved_to(status, error=error, lease_expires_at=None), calls
        )
        if ended and isinstance(exc, ModelBudgetSpent) and self._dead_letters is not None:
            # Given up as the dead letter would give it up: listed for the operator too.
            await self._dead_letters.add(claimed.tenant, claimed.id)
        return Delivery.RETRY if error.retryable else Delivery.SUCCESS

    async def _finish(
        self, claimed: JobRecord, change: Change, calls: list[ModelCall] | None = None
    ) -> bool:
        """Apply `change` (and record this attempt's model `calls`) if the record still shows
        this claim; False if the claim was lost (taken over, or cancelled while the model
        ran: the outcome is then discarded)."""

        def if_still_claimed(current: JobRecord) -> JobRecord | None:
            if not same_claim(current, claimed):
                return None
            return with_calls(change(current), calls or [])

        updated = await self._jobs.update(claimed.id, if_still_claimed)
        if updated is None or not updated.written:
            log.warning(
                "job_id=%s attempt=%d lost its claim (%s); outcome discarded",
                claimed.id,
                claimed.attempts,
                updated.record.status if updated else "gone",
            )
            return False
        await self._on_change(updated.record)
        return True

    def _in_background(self, publishing: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await publishing
            except Exception:  # nothing waits on it: its failure is told here or nowhere
                log.exception("job event not published")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
