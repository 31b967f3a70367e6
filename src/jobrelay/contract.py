"""The job contract: the record in the state store, the message on the `jobs` topic, and the
public API shapes built from them.

The internal types (JobRecord, JobMessage) are what the services exchange through Dapr; the
public ones (SubmitRequest, JobView) are what clients see. They are kept apart so the stored
record can grow internal fields (leases, say) without leaking them into the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    """Where a job is in its life. Only `queued` and `running` are not terminal."""

    QUEUED = "queued"  # accepted and published; no worker holds it
    RUNNING = "running"  # a worker has claimed it and is calling the model
    SUCCEEDED = "succeeded"  # the result is stored
    FAILED = "failed"  # gave up; `error` says why
    CANCELLED = "cancelled"  # the client cancelled it; any result was discarded
    EXPIRED = "expired"  # its deadline passed before a worker started it

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


# Which status may follow which. A write that is not in this table is refused, so a late or
# duplicate message can never move a job backwards (say, from succeeded to running).
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
    ),
    JobStatus.RUNNING: frozenset(
        # running -> queued hands a job back for a retry after a transient failure, and
        # running -> running is a takeover of a claim whose worker died.
        {
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
}


class IllegalTransition(Exception):
    """A write would move a job to a status that may not follow its current one."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobInput(_Model):
    """What the model works on."""

    text: str = Field(min_length=1, description="The text to classify, embed or summarise.")


class Usage(_Model):
    """Tokens the model counted for this job."""

    prompt_tokens: int = Field(ge=0, description="Tokens in the input.")
    completion_tokens: int = Field(default=0, ge=0, description="Tokens the model generated.")
    total_tokens: int = Field(ge=0, description="prompt_tokens + completion_tokens.")


class JobResult(_Model):
    """What the model produced."""

    output: dict[str, Any] = Field(description="The task's output; its shape depends on the task.")
    model: str = Field(description="The model that answered.")
    usage: Usage = Field(description="Token usage of every model call the job made.")


class JobError(_Model):
    """Why a job failed."""

    code: str = Field(description="Stable machine-readable code, e.g. `model_unavailable`.")
    message: str = Field(description="What went wrong, for a person.")
    retryable: bool = Field(description="Whether submitting the same job again may succeed.")


class JobRecord(_Model):
    """The job as stored under `job:{id}` in the state store; the single source of truth."""

    id: str = Field(description="Job id, a random UUID4 hex string.")
    tenant: str = Field(default="default", description="Owner of the job.")
    task: str = Field(description="Task name, e.g. `classify`.")
    input: JobInput = Field(description="The task's input.")
    params: dict[str, Any] = Field(default_factory=dict, description="Task parameters.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Client labels, echoed.")
    status: JobStatus = Field(description="Where the job is in its life.")
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

    @classmethod
    def new(
        cls,
        task: str,
        input: JobInput,
        params: dict[str, Any],
        metadata: dict[str, str],
        deadline_seconds: float | None = None,
    ) -> Self:
        now = utcnow()
        return cls(
            id=uuid.uuid4().hex,
            task=task,
            input=input,
            params=params,
            metadata=metadata,
            status=JobStatus.QUEUED,
            created_at=now,
            deadline=now + timedelta(seconds=deadline_seconds) if deadline_seconds else None,
        )

    def moved_to(self, status: JobStatus, **changes: Any) -> Self:
        """A copy in `status`, or IllegalTransition if `status` may not follow the current one."""
        if status not in TRANSITIONS.get(self.status, frozenset()):
            raise IllegalTransition(f"job {self.id}: {self.status} -> {status}")
        if status.terminal:
            changes.setdefault("finished_at", utcnow())
            changes.setdefault("lease_expires_at", None)
        return self.model_copy(update={"status": status, **changes})


class JobMessage(_Model):
    """The message on the `jobs` topic: a claim check on the stored record, not the record.

    The worker reads the record anyway to claim it with an ETag, so the message stays small
    and never carries inputs that the store already holds.
    """

    job_id: str = Field(description="Key of the record, without the `job:` prefix.")
    task: str = Field(description="Task name, for routing and metrics before the record is read.")


class SubmitRequest(_Model):
    """Body of `POST /v1/jobs`."""

    task: str = Field(description="Task name: `classify` or `embed`.", examples=["classify"])
    input: JobInput = Field(description="What the model works on.")
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


class JobView(_Model):
    """A job as the API shows it."""

    id: str = Field(description="Job id.")
    task: str = Field(description="Task name.")
    status: JobStatus = Field(description="Where the job is in its life.")
    status_url: str = Field(description="Absolute URL to poll for this job.")
    attempts: int = Field(description="Times a worker has started the job.")
    metadata: dict[str, str] = Field(description="Your labels, as submitted.")
    created_at: datetime = Field(description="When intake accepted the job.")
    started_at: datetime | None = Field(description="When a worker last started it.")
    finished_at: datetime | None = Field(description="When it became terminal.")
    deadline: datetime | None = Field(description="Expires if not started by then.")
    result: JobResult | None = Field(description="The result, once succeeded.")
    error: JobError | None = Field(description="Why it failed, once failed.")

    @classmethod
    def of(cls, record: JobRecord, status_base_url: str) -> Self:
        fields = record.model_dump(include=set(cls.model_fields) - {"status_url"})
        return cls(**fields, status_url=f"{status_base_url.rstrip('/')}/v1/jobs/{record.id}")
