"""The messages on the broker: a job to run, and a job that changed status."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import Field

from jobrelay.contract.parts import ContractModel
from jobrelay.contract.record import BatchLine, JobRecord
from jobrelay.contract.status import JobStatus


class JobMessage(ContractModel):
    """The message on the `jobs` topic: a claim check on the stored record, not the record.

    The worker reads the record anyway to claim it with an ETag, so the message stays small
    and never carries inputs that the store already holds.
    """

    job_id: str = Field(description="Key of the record, without the `job:` prefix.")
    task: str = Field(description="Task name, for routing and metrics before the record is read.")
    sent_at: datetime = Field(
        description="When intake published it, before storing the record: a worker that finds "
        "no record waits for it until this plus its grace (jobrelay.constants)."
    )


class JobEvent(ContractModel):
    """A job changed status: the message on `job-events` and `job-webhooks`.

    Ids and status only: what a client sent and a model answered stays in the encrypted
    store, and a consumer that shows the job reads it there. `seq` orders the events of one
    job, since brokers may deliver them out of order.
    """

    job_id: str = Field(description="The job.")
    tenant: str = Field(description="The job's owner.")
    seq: int = Field(description="The record's `seq` after the change.")
    status: JobStatus = Field(description="The status it changed to.")
    watchers: list[str] = Field(
        default_factory=list,
        description="The replicas waiting on the job: each subscription's routing rule passes "
        "only the events that name its own replica (jobrelay.events).",
    )
    delta: int | None = Field(
        default=None,
        ge=1,
        description="Set on a delta event (a streaming task's output, not a status change): "
        "chunk `delta` of the text streamed in the `running` whose `seq` this is is stored "
        "(`delta:{job_id}:{seq}:{delta}`). The text itself stays in the store.",
    )

    @classmethod
    def of(cls, record: JobRecord, delta: int | None = None) -> Self:
        return cls(
            job_id=record.id,
            tenant=record.tenant,
            seq=record.seq,
            status=record.status,
            watchers=record.watchers,
            delta=delta,
        )


class BatchJobEvent(ContractModel):
    """A job made from a batch line ended: the message on `batch-events` (one consumer
    group: intake counts it into its batch without reading the record)."""

    job_id: str = Field(description="The job.")
    batch: BatchLine = Field(description="Its batch and line.")
    status: JobStatus = Field(description="The terminal status it reached.")

    @classmethod
    def of(cls, record: JobRecord) -> Self:
        if record.batch is None:
            raise ValueError(f"job {record.id} is not from a batch")
        return cls(job_id=record.id, batch=record.batch, status=record.status)
