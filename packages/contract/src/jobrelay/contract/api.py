"""The public API's shapes: what clients send and what they are shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import Field

from jobrelay.contract import parts
from jobrelay.contract.parts import ContractModel
from jobrelay.contract.record import JobRecord
from jobrelay.contract.status import JobStatus, Priority


class SubmitRequest(ContractModel):
    """Body of `POST /v1/jobs`."""

    task: str = Field(
        description="Task name, e.g. `classify`; each server's OpenAPI lists the tasks it runs.",
        examples=["classify"],
    )
    input: parts.JobInput = Field(
        default_factory=parts.JobInput, description="What the model works on (chat: optional)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description='Task parameters, e.g. `{"labels": ["positive", "negative"]}`.',
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Your own labels; stored and echoed back unchanged."
    )
    deadline_seconds: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600, description="Expire the job if not started by then."
    )
    webhook: parts.WebhookSpec | None = Field(
        default=None, description="POST the job here on the chosen status changes, signed."
    )
    priority: Priority = Field(
        default=Priority.NORMAL,
        description="`high` jobs are served before `normal`, `normal` before `low`; among "
        "tenants of one priority, by fair share (docs/fairness.md).",
    )


class JobInputView(ContractModel):
    """The input as the API shows it: the text, or the file's name, type and size."""

    text: str | None = Field(description="The text, if the input is text.")
    filename: str | None = Field(description="The uploaded file's name, if any.")
    content_type: str | None = Field(description="The uploaded file's media type, if any.")
    size: int | None = Field(description="The uploaded file's size in bytes, if any.")

    @classmethod
    def of(cls, job_input: parts.JobInput) -> Self:
        file = job_input.file
        return cls(
            text=job_input.text,
            filename=file.filename if file else None,
            content_type=file.content_type if file else None,
            size=file.size if file else None,
        )


class QueueView(ContractModel):
    """Where a queued job stands among its tenant's queued jobs: an estimate (docs/api.md)."""

    position: int | None = Field(
        ge=1,
        description="1: next of its tenant's jobs to start. Among the tenant's jobs only, in "
        "accept order; priorities and other tenants' jobs may change the order. Null when "
        "this server does not keep it (the tenant has no `queued_jobs` quota).",
    )
    estimated_start_at: datetime | None = Field(
        description="When it may start at the rate the tenant's jobs have been starting; "
        "null until that rate is known."
    )


class JobView(ContractModel):
    """A job as the API shows it."""

    id: str = Field(description="Job id.")
    task: str = Field(description="Task name.")
    status: JobStatus = Field(description="Where the job is in its life.")
    priority: Priority = Field(default=Priority.NORMAL, description="Its lane.")
    status_url: str = Field(description="Absolute URL to poll for this job.")
    attempts: int = Field(description="Times a worker has started the job.")
    metadata: dict[str, str] = Field(description="Your labels, as submitted.")
    created_at: datetime = Field(description="When intake accepted the job.")
    started_at: datetime | None = Field(description="When a worker last started it.")
    finished_at: datetime | None = Field(description="When it became terminal.")
    deadline: datetime | None = Field(description="Expires if not started by then.")
    result: parts.JobResult | None = Field(description="The result, once succeeded.")
    error: parts.JobError | None = Field(description="Why it failed, once failed.")
    queue_seconds: float | None = Field(description="Waiting before a worker first started it.")
    model_seconds: float | None = Field(description="Time spent in model calls.")
    worker: str | None = Field(
        description="The worker that ran it (or runs it), as `{implementation}/{replica}`."
    )
    model_calls: list[parts.ModelCall] = Field(
        description="Every model call, failed ones included."
    )
    input: JobInputView = Field(description="What the job works on (a file by its metadata).")
    webhook: parts.WebhookSpec | None = Field(
        description="Where changes are delivered, if anywhere."
    )
    webhook_deliveries: list[parts.WebhookDelivery] = Field(description="Delivery attempts so far.")
    queue: QueueView | None = Field(
        default=None,
        description="While queued, on GET /v1/jobs/{id}: its place among its tenant's queued "
        "jobs. Null otherwise.",
    )
    # Only in an `output` webhook (left out of every other answer): the text so far.
    streamed_text: str | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="In an `output` webhook of a running chat or summarize job: the text the "
        "model has streamed so far. Absent everywhere else.",
    )

    @classmethod
    def of(cls, record: JobRecord, status_base_url: str, queue: QueueView | None = None) -> Self:
        fields = record.model_dump(include=set(cls.model_fields) - {"status_url", "input"})
        return cls(
            **fields,
            input=JobInputView.of(record.input),
            status_url=job_url(status_base_url, record.id),
            queue=queue,
        )


class JobList(ContractModel):
    """Answer of `GET /v1/jobs`: a page of your jobs, newest first."""

    results: list[JobView] = Field(description="Your jobs that pass the filters, newest first.")
    next: str | None = Field(
        description="URL of the next page (older jobs, same filters); null once there is "
        "nothing older. A page may hold fewer results than `limit`, even none, and still "
        "have a `next`: follow it until it is null."
    )


def job_url(status_base_url: str, job_id: str) -> str:
    return f"{status_base_url.rstrip('/')}/v1/jobs/{job_id}"
