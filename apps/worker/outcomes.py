"""How a job's attempt ends, as record changes: the model calls it made, a deadline that
passed, a budget spent, and the dead letter's give-up. The runner (apps/worker/runner.py)
applies them through the job store's guarded update.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from apps.worker.failures import describe
from apps.worker.gateway import ModelBudgetSpent
from jobrelay.conflicts import Contended
from jobrelay.contract import JobError, JobRecord, JobStatus, ModelCall, utcnow
from jobrelay.store import JobStore

OnChange = Callable[[JobRecord], Awaitable[None]]


class DeadlinePassed(Exception):
    """The job's deadline came while its model call was running."""


# The error a job carries while handed back by a worker that stopped mid-job.
STOPPED = JobError(
    code="worker_stopped",
    message="the worker stopped while running the job; it will run again",
    retryable=True,
)


def error_of(claimed: JobRecord, exc: Exception, calls: list[ModelCall]) -> JobError:
    """What the attempt's failure tells the job's client."""
    if isinstance(exc, DeadlinePassed):
        return JobError(code="deadline_exceeded", message=str(exc), retryable=False)
    if isinstance(exc, ModelBudgetSpent):
        return budget_spent(claimed, calls)
    return describe(exc)


def with_calls(record: JobRecord, calls: list[ModelCall]) -> JobRecord:
    if not calls:
        return record
    spent = (record.model_seconds or 0.0) + sum(c.seconds for c in calls)
    return record.model_copy(
        update={"model_calls": [*record.model_calls, *calls], "model_seconds": spent}
    )


def budget_spent(claimed: JobRecord, calls: list[ModelCall]) -> JobError:
    spent = len(claimed.model_calls) - claimed.budget_start + len(calls)
    errors = [c.error for c in [*claimed.model_calls, *calls] if c.error]
    return JobError(
        code="model_call_budget_exhausted",
        message=f"stopped after {spent} model calls, the most one job may make "
        "(JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB)"
        + (f"; last error: {errors[-1]}" if errors else ""),
        retryable=False,
    )


def same_claim(current: JobRecord, claimed: JobRecord) -> bool:
    return current.status is JobStatus.RUNNING and current.attempts == claimed.attempts


def past_deadline(record: JobRecord) -> JobRecord:
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


async def give_up(jobs: JobStore, job_id: str, on_change: OnChange) -> JobRecord | None:
    """Mark a dead-lettered job failed, with the last error it recorded; the failed record,
    or None if it was not left to fail (gone, already final, or still running under a live
    claim)."""

    def failed(record: JobRecord) -> JobRecord | None:
        if record.status.terminal:
            return None
        lease = record.lease_expires_at
        if record.status is JobStatus.RUNNING and lease and lease > utcnow():
            return None  # a held duplicate gave up waiting while the job runs: its worker ends it
        last = record.error
        error = JobError(
            code=last.code if last else "retries_exhausted",
            message=f"gave up after {record.attempts} attempt(s)"
            + (f"; last error: {last.message}" if last else ""),
            retryable=True,
        )
        return record.moved_to(JobStatus.FAILED, error=error)

    try:
        updated = await jobs.update(job_id, failed)
    except Contended:
        return None
    if updated is None or not updated.written:
        return None
    await on_change(updated.record)
    return updated.record
