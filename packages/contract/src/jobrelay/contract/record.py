"""The job as stored: the internal record every service reads and writes through Dapr.

The internal types (JobRecord, and the messages in jobrelay.contract.messages) are what the
services exchange; the public ones (jobrelay.contract.api) are what clients see. They are
kept apart so the stored record can grow internal fields (leases, say) without leaking them
into the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Self

from pydantic import Field

from jobrelay.contract.parts import (
    ContractModel,
    JobError,
    JobInput,
    JobResult,
    ModelCall,
    WebhookDelivery,
    WebhookSpec,
)
from jobrelay.contract.status import (
    TRANSITIONS,
    IllegalTransition,
    JobStatus,
    Priority,
    new_job_id,
    utcnow,
)

# A job's watchers are kept to the newest this many: a replica that stopped watching is not
# removed (that would be a write per stream closed), so the list must not grow with them.
MAX_WATCHERS = 8


class BatchLine(ContractModel):
    """Internal: the line of an OpenAI-style batch a job was made from (apps/intake/batches)."""

    batch_id: str = Field(description="The batch, `batch_...`.")
    line: int = Field(ge=1, description="The 1-based line of the batch's input file.")
    custom_id: str = Field(description="The line's `custom_id`, echoed in the output file.")


class JobRecord(ContractModel):
    """The job as stored under `job:{id}` in the state store; the single source of truth."""

    id: str = Field(description="Job id, a random UUID4 hex string.")
    tenant: str = Field(default="default", description="Owner of the job.")
    priority: Priority = Field(
        default=Priority.NORMAL, description="Its lane: `high`, `normal` or `low`."
    )
    task: str = Field(description="Task name, e.g. `classify`.")
    input: JobInput = Field(description="The task's input.")
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Client labels, echoed.")
    status: JobStatus = Field(description="Where the job is in its life.")
    seq: int = Field(
        default=0, ge=0, description="Bumped on every status change; the event id of streams."
    )
    attempts: int = Field(default=0, ge=0, description="Times a worker has started the job.")
    created_at: datetime = Field(description="When intake accepted the job.")
    started_at: datetime | None = Field(default=None, description="When a worker last claimed it.")
    finished_at: datetime | None = Field(default=None, description="When it became terminal.")
    deadline: datetime | None = Field(default=None, description="Not started by then: expired.")
    lease_expires_at: datetime | None = Field(
        default=None, description="Internal: until when the running worker's claim holds."
    )
    result: JobResult | None = Field(default=None, description="Set when succeeded.")
    error: JobError | None = Field(default=None, description="Set when failed; last error else.")
    queue_seconds: float | None = Field(
        default=None, description="Waiting before a worker first started it."
    )
    model_seconds: float | None = Field(
        default=None, description="Time spent in model calls, over all attempts."
    )
    model_calls: list[ModelCall] = Field(
        default_factory=list, description="Every model call, failed ones included."
    )
    budget_start: int = Field(
        default=0,
        ge=0,
        description="Internal: how many of `model_calls` came before the job's last replay; "
        "the job's model-call budget counts the calls after them.",
    )
    webhook: WebhookSpec | None = Field(default=None, description="Where to deliver changes.")
    webhook_deliveries: list[WebhookDelivery] = Field(
        default_factory=list, description="Every delivery attempt, oldest first."
    )
    traceparent: str | None = Field(
        default=None,
        description="Internal: W3C traceparent of the submit; every later span of the job "
        "joins its trace, even from a delivery that arrived without one.",
    )
    worker: str | None = Field(
        default=None,
        description="The worker that made the latest claim, as `{implementation}/{replica}` "
        "(e.g. `go/worker-3f2a9c1b0d4e`): workers in any language may run a job "
        "(README, Polyglot workers).",
    )
    batch: BatchLine | None = Field(
        default=None,
        description="Internal: the batch line this job came from; its terminal status is "
        "published on `batch-events` so the batch counts it without reading the record.",
    )
    watchers: list[str] = Field(
        default_factory=list,
        max_length=MAX_WATCHERS,
        description="Internal: the intake and status replicas waiting on this job (a "
        "`Prefer: wait`, a live stream). Its job events are published only while it has any, "
        "and each reaches only these replicas (jobrelay.events).",
    )

    @classmethod
    def new(
        cls,
        task: str,
        input: JobInput,
        params: dict[str, Any],
        metadata: dict[str, str],
        deadline_seconds: float | None = None,
        webhook: WebhookSpec | None = None,
        job_id: str | None = None,
        tenant: str = "default",
        priority: Priority = Priority.NORMAL,
    ) -> Self:
        now = utcnow()
        return cls(
            id=job_id or new_job_id(),
            tenant=tenant,
            priority=priority,
            task=task,
            input=input,
            params=params,
            metadata=metadata,
            status=JobStatus.QUEUED,
            created_at=now,
            deadline=now + timedelta(seconds=deadline_seconds) if deadline_seconds else None,
            webhook=webhook,
        )

    def replayed(self) -> Self:
        """A failed job queued again by an operator (the dead-letter replay): the one way out
        of a terminal status, never taken by a message. Its history (attempts, model calls,
        webhook deliveries) stays; its outcome goes."""
        if self.status is JobStatus.QUEUED:
            return self  # a replay that stopped before its message left; publish again
        if self.status is not JobStatus.FAILED:
            raise IllegalTransition(f"job {self.id}: only failed jobs are replayed")
        return self.model_copy(
            update={
                "status": JobStatus.QUEUED,
                "seq": self.seq + 1,
                "finished_at": None,
                "error": None,
                "result": None,
                "lease_expires_at": None,
                # An operator's replay: the job may spend a whole budget again.
                "budget_start": len(self.model_calls),
            }
        )

    def watched_by(self, replica: str) -> Self | None:
        """A copy with `replica` among the watchers; None if it is there already."""
        if replica in self.watchers:
            return None
        return self.model_copy(update={"watchers": [*self.watchers, replica][-MAX_WATCHERS:]})

    def moved_to(self, status: JobStatus, **changes: Any) -> Self:
        """A copy in `status`, or IllegalTransition if `status` may not follow the current one."""
        if status not in TRANSITIONS.get(self.status, frozenset()):
            raise IllegalTransition(f"job {self.id}: {self.status} -> {status}")
        if status.terminal:
            changes.setdefault("finished_at", utcnow())
            changes.setdefault("lease_expires_at", None)
        return self.model_copy(update={"status": status, "seq": self.seq + 1, **changes})
