"""The OpenAI Files and Batch API's objects, as the official `openai` SDK parses them
(openai-python `types/file_object.py`, `types/batch.py`), and what intake keeps beside them.

Times are Unix seconds, as OpenAI sends them. The stored documents carry what the API shows
plus intake's own fields (tenant, the file's chunks), never shown to a client.
"""

from __future__ import annotations

import re
import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_BATCH_ID = re.compile(r"batch_[0-9a-f]{32}")  # new_batch_id's shape
# One job id per (batch, line): the same line always makes the same job, so a replayed
# fan-out step finds the jobs it made before instead of making new ones.
_JOB_IDS = uuid.UUID("5b0c6f0e-3d1a-4f57-9a51-6a0b0d7e2c11")


def now() -> int:
    return int(time.time())


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex}"


def is_batch_id(text: str) -> bool:
    """Whether `text` has new_batch_id's shape. An id from a URL without it could name one of
    a batch's other keys (`batch:{id}:fanout`, `batch:index:{tenant}`) instead of a batch."""
    return _BATCH_ID.fullmatch(text) is not None


def job_id_of(batch_id: str, line: int) -> str:
    return uuid.uuid5(_JOB_IDS, f"{batch_id}:{line}").hex


class Endpoint(StrEnum):
    CHAT = "/v1/chat/completions"
    EMBEDDINGS = "/v1/embeddings"
    JOBS = "/v1/jobs"


class BatchStatus(StrEnum):
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (self.COMPLETED, self.FAILED, self.EXPIRED, self.CANCELLED)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FileObject(_Shape):
    """A file as `client.files.create/retrieve` answers it."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["batch", "batch_output"]
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class StoredFile(FileObject):
    """A file as stored (`oafile:{id}`; its bytes in chunks `file:{id}:{n}`)."""

    tenant: str
    chunks: int
    lines: int = Field(description="Non-blank lines: a batch's total.")

    def public(self) -> FileObject:
        return FileObject.model_validate(self.model_dump(include=set(FileObject.model_fields)))


class RequestCounts(_Shape):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchError(_Shape):
    code: str
    message: str
    line: int | None = None
    param: str | None = None


class BatchErrors(_Shape):
    object: Literal["list"] = "list"
    data: list[BatchError] = Field(default_factory=list)


class BatchObject(_Shape):
    """A batch as `client.batches.create/retrieve/list/cancel` answer it."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    metadata: dict[str, str] | None = None


class StoredBatch(BatchObject):
    """A batch as stored (`batch:{id}`): its counts live in their own key (counts.py)."""

    tenant: str
    # How the batch ends once its jobs have: cancelled (a client asked), expired (its
    # window passed), or None: completed.
    ends_as: BatchStatus | None = None

    def public(self, counts: RequestCounts) -> BatchObject:
        shown = self.model_dump(include=set(BatchObject.model_fields))
        return BatchObject.model_validate(shown | {"request_counts": counts.model_dump()})


class CreateBatch(BaseModel):
    """Body of `POST /v1/batches`."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str = Field(max_length=64)
    endpoint: Endpoint
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    output_expires_after: dict[str, Any] | None = None


class Step(BaseModel):
    """A message on the `batches` topic: the next thing to do for a batch."""

    batch_id: str
    kind: Literal["fan_out", "cancel", "reconcile", "finalize"]
    first_line: int = 1  # fan_out: the line to start at, and its byte offset in the file
    offset: int = 0
