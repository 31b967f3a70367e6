"""The parts a job record is made of, each also shown to clients as it is."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from jobrelay.contract.status import JobStatus


class ContractModel(BaseModel):
    """Every wire type: an unknown field is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class FileRef(ContractModel):
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


class JobInput(ContractModel):
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
        # task that an input a task needs is there (jobrelay.task_catalog).
        if self.text is not None and self.file is not None:
            raise ValueError("give input.text or upload a file, not both")
        return self


class WebhookEvent(StrEnum):
    """Which changes a webhook is told about (Replicate's filters)."""

    START = "start"  # a worker started the job
    # The text so far of a streaming task (chat, summarize) while it runs: at most one
    # delivery per 500 ms per job.
    OUTPUT = "output"
    # The job became terminal, whatever the outcome (as Replicate's `completed`, and as
    # jobrelay's `completed` always meant).
    COMPLETED = "completed"
    FAILED = "failed"  # the job failed (or expired, or was cancelled)
    # The name `start` had before: still accepted, read as `start` (WebhookSpec).
    RUNNING = "running"

    @classmethod
    def of(cls, status: JobStatus) -> WebhookEvent | None:
        """The event a status change is (`completed` for every terminal one; see `wanted`)."""
        if status.terminal:
            return cls.COMPLETED
        return cls.START if status is JobStatus.RUNNING else None


def _start_for_running(events: Any) -> Any:
    # Old clients say `running`; stored and compared as `start`, each event once.
    if not isinstance(events, list):
        return events
    named = ["start" if e in ("running", WebhookEvent.RUNNING) else e for e in events]
    return list(dict.fromkeys(named))


class WebhookSpec(ContractModel):
    """Where to POST the job when it changes."""

    url: str = Field(
        pattern=r"^https?://", max_length=2048, description="http(s) URL that receives the job."
    )
    events: Annotated[list[WebhookEvent], BeforeValidator(_start_for_running)] = Field(
        default_factory=lambda: [WebhookEvent.COMPLETED],
        min_length=1,
        description="Changes to deliver, any of `start`, `output` (the text so far of chat "
        "and summarize, at most once per 500 ms), `completed` (any terminal status) and "
        "`failed` (failed, expired or cancelled); `completed` by default. `running` is an "
        "old name of `start`.",
    )

    def wanted(self, status: JobStatus) -> WebhookEvent | None:
        """The event delivered for a change to `status`, None if not asked for. A failure
        asked for both ways is delivered once, as `failed`."""
        if status.terminal:
            if status is not JobStatus.SUCCEEDED and WebhookEvent.FAILED in self.events:
                return WebhookEvent.FAILED
            return WebhookEvent.COMPLETED if WebhookEvent.COMPLETED in self.events else None
        if status is JobStatus.RUNNING and WebhookEvent.START in self.events:
            return WebhookEvent.START
        return None


class WebhookDelivery(ContractModel):
    """One attempt to deliver a webhook; recorded on the job, never changing its status."""

    event: WebhookEvent = Field(description="What was delivered.")
    attempt: int = Field(ge=1, description="1 for the first try.")
    at: datetime = Field(description="When the attempt was made.")
    status_code: int | None = Field(default=None, description="The receiver's answer, if any.")
    error: str | None = Field(default=None, description="Why it failed, if it did.")
    delivered: bool = Field(description="Whether the receiver answered 2xx.")


class Usage(ContractModel):
    """Tokens the model counted for this job."""

    prompt_tokens: int = Field(ge=0, description="Tokens in the input.")
    completion_tokens: int = Field(default=0, ge=0, description="Tokens the model generated.")
    total_tokens: int = Field(ge=0, description="prompt_tokens + completion_tokens.")


class JobResult(ContractModel):
    """What the model produced."""

    output: dict[str, Any] = Field(description="The task's output; its shape depends on the task.")
    model: str = Field(description="The model that answered.")
    usage: Usage = Field(description="Token usage of every model call the job made.")


class ModelCall(ContractModel):
    """One call to a model while running the job: which, how long, and how it ended."""

    profile: str = Field(description="The model profile called (config/models.yaml).")
    model: str = Field(description="The model id at that endpoint.")
    attempt: int = Field(ge=1, description="The job's attempt (delivery) this call was in.")
    started_at: datetime = Field(description="When the call started.")
    seconds: float = Field(ge=0, description="How long it took.")
    error: str | None = Field(default=None, description="Why it failed; None if it answered.")
    status_code: int | None = Field(default=None, description="The backend's HTTP status.")


class JobError(ContractModel):
    """Why a job failed."""

    code: str = Field(description="Stable machine-readable code, e.g. `model_unavailable`.")
    message: str = Field(description="What went wrong, for a person.")
    retryable: bool = Field(description="Whether submitting the same job again may succeed.")
