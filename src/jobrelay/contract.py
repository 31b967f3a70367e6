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

from pydantic import BaseModel, ConfigDict, Field, model_validator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


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


class FileRef(_Model):
    """An uploaded file, kept in the state store beside its job (claim check).

    Stored in chunks under `file:{job_id}:{n}`, so neither an upload nor a message ever
    holds the whole file, and no single state value outgrows the sidecar's message limit.
    """

    key: str = Field(description="Key prefix of the chunks: `file:{job_id}`.")
    filename: str | None = Field(default=None, description="Name the client gave the file.")
    content_type: str = Field(description="Media type, e.g. `image/png`.")
    size: int = Field(ge=0, description="Bytes.")
    chunks: int = Field(ge=0, description="Number of stored chunks.")
    sha256: str = Field(description="Hex SHA-256 of the whole file.")


class JobInput(_Model):
    """What the model works on: text, or an uploaded file (exactly one)."""

    text: str | None = Field(
        default=None, min_length=1, description="The text to classify, embed or summarise."
    )
    file: FileRef | None = Field(default=None, description="An uploaded file, by reference.")
    # Internal: the file's bytes, loaded by the worker for a task that reads files; never
    # stored, published or shown (exclude=True keeps it out of every dump).
    content: bytes | None = Field(default=None, exclude=True, repr=False)

    @property
    def empty(self) -> bool:
        return self.text is None and self.file is None

    def require_text(self) -> str:
        """The text; a text task only ever runs once the worker has read any file as text."""
        if self.text is None:
            raise ValueError("this input is a file that was not read as text")
        return self.text

    @model_validator(mode="after")
    def _at_most_one(self) -> Self:
        # Empty is allowed here (chat carries its input in its messages); intake checks per
        # task that an input a task needs is there (jobrelay.inputs).
        if self.text is not None and self.file is not None:
            raise ValueError("give input.text or upload a file, not both")
        return self


class WebhookEvent(StrEnum):
    """Which status changes a webhook is told about."""

    RUNNING = "running"  # a worker started the job
    COMPLETED = "completed"  # the job became terminal, whatever the outcome

    @classmethod
    def of(cls, status: JobStatus) -> WebhookEvent | None:
        if status.terminal:
            return cls.COMPLETED
        return cls.RUNNING if status is JobStatus.RUNNING else None


class WebhookSpec(_Model):
    """Where to POST the job when it changes."""

    url: str = Field(
        pattern=r"^https?://", max_length=2048, description="http(s) URL that receives the job."
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: [WebhookEvent.COMPLETED],
        min_length=1,
        description="Status changes to deliver; `completed` by default.",
    )


class WebhookDelivery(_Model):
    """One attempt to deliver a webhook; recorded on the job, never changing its status."""

    event: WebhookEvent = Field(description="What was delivered.")
    attempt: int = Field(ge=1, description="1 for the first try.")
    at: datetime = Field(description="When the attempt was made.")
    status_code: int | None = Field(default=None, description="The receiver's answer, if any.")
    error: str | None = Field(default=None, description="Why it failed, if it did.")
    delivered: bool = Field(description="Whether the receiver answered 2xx.")


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


class ModelCall(_Model):
    """One call to a model while running the job: which, how long, and how it ended."""

    profile: str = Field(description="The model profile called (config/models.yaml).")
    model: str = Field(description="The model id at that endpoint.")
    attempt: int = Field(ge=1, description="The job's attempt (delivery) this call was in.")
    started_at: datetime = Field(description="When the call started.")
    seconds: float = Field(ge=0, description="How long it took.")
    error: str | None = Field(default=None, description="Why it failed; None if it answered.")
    status_code: int | None = Field(default=None, description="The backend's HTTP status.")


class JobError(_Model):
    """Why a job failed."""

    code: str = Field(description="Stable machine-readable code, e.g. `model_unavailable`.")
    message: str = Field(description="What went wrong, for a person.")
    retryable: bool = Field(description="Whether submitting the same job again may succeed.")


# A job's watchers are kept to the newest this many: a replica that stopped watching is not
# removed (that would be a write per stream closed), so the list must not grow with them.
MAX_WATCHERS = 8


class JobRecord(_Model):
    """The job as stored under `job:{id}` in the state store; the single source of truth."""

    id: str = Field(description="Job id, a random UUID4 hex string.")
    tenant: str = Field(default="default", description="Owner of the job.")
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
    ) -> Self:
        now = utcnow()
        return cls(
            id=job_id or new_job_id(),
            tenant=tenant,
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


class JobMessage(_Model):
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


class JobEvent(_Model):
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

    @classmethod
    def of(cls, record: JobRecord) -> Self:
        return cls(
            job_id=record.id,
            tenant=record.tenant,
            seq=record.seq,
            status=record.status,
            watchers=record.watchers,
        )


class SubmitRequest(_Model):
    """Body of `POST /v1/jobs`."""

    task: str = Field(
        description="Task name: classify, embed, summarize, extract, chat or describe_image.",
        examples=["classify"],
    )
    input: JobInput = Field(
        default_factory=JobInput, description="What the model works on (chat: optional)."
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
    webhook: WebhookSpec | None = Field(
        default=None, description="POST the job here on the chosen status changes, signed."
    )


class JobInputView(_Model):
    """The input as the API shows it: the text, or the file's name, type and size."""

    text: str | None = Field(description="The text, if the input is text.")
    filename: str | None = Field(description="The uploaded file's name, if any.")
    content_type: str | None = Field(description="The uploaded file's media type, if any.")
    size: int | None = Field(description="The uploaded file's size in bytes, if any.")

    @classmethod
    def of(cls, job_input: JobInput) -> Self:
        file = job_input.file
        return cls(
            text=job_input.text,
            filename=file.filename if file else None,
            content_type=file.content_type if file else None,
            size=file.size if file else None,
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
    queue_seconds: float | None = Field(description="Waiting before a worker first started it.")
    model_seconds: float | None = Field(description="Time spent in model calls.")
    worker: str | None = Field(
        description="The worker that ran it (or runs it), as `{implementation}/{replica}`."
    )
    model_calls: list[ModelCall] = Field(description="Every model call, failed ones included.")
    input: JobInputView = Field(description="What the job works on (a file by its metadata).")
    webhook: WebhookSpec | None = Field(description="Where changes are delivered, if anywhere.")
    webhook_deliveries: list[WebhookDelivery] = Field(description="Delivery attempts so far.")

    @classmethod
    def of(cls, record: JobRecord, status_base_url: str) -> Self:
        fields = record.model_dump(include=set(cls.model_fields) - {"status_url", "input"})
        return cls(
            **fields,
            input=JobInputView.of(record.input),
            status_url=job_url(status_base_url, record.id),
        )


def job_url(status_base_url: str, job_id: str) -> str:
    return f"{status_base_url.rstrip('/')}/v1/jobs/{job_id}"
