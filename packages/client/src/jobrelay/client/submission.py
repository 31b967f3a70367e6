"""One job to submit, and how it goes over the wire (JSON, or multipart with a file).

Kept apart from the clients so the sync and async ones build byte-identical requests: an
Idempotency-Key only protects a retry whose body is the same as the first try's.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobrelay.client.errors import JobrelayError
from jobrelay.contract import JobView, Priority, SubmitRequest, WebhookSpec


@dataclass(frozen=True)
class Upload:
    """A file to send as the job's input."""

    content: bytes
    filename: str
    content_type: str

    @classmethod
    def from_path(cls, path: Path, content_type: str | None = None) -> Upload:
        guessed = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(path.read_bytes(), path.name, guessed)


@dataclass(frozen=True)
class Submission:
    """A job as the caller describes it: a task and either `text` or `file`."""

    task: str
    text: str | None = None
    file: Upload | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    deadline_seconds: float | None = None
    webhook: WebhookSpec | None = None
    idempotency_key: str | None = None
    # `high` before `normal` before `low`; sent only when not the default, so a request
    # without it stays byte-identical to one from before priorities.
    priority: Priority = Priority.NORMAL

    @classmethod
    def of(cls, request: SubmitRequest, idempotency_key: str | None = None) -> Submission:
        """A text job from the API's own request model (a batch file's line, say)."""
        return cls(
            task=request.task,
            text=request.input.text,
            params=request.params,
            metadata=request.metadata,
            deadline_seconds=request.deadline_seconds,
            webhook=request.webhook,
            idempotency_key=idempotency_key,
            priority=request.priority,
        )

    def request_kwargs(self, api_headers: dict[str, str]) -> dict[str, Any]:
        """httpx keyword arguments for `POST /v1/jobs`."""
        headers = dict(api_headers)
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        if self.file is None:
            if self.text is None:
                raise ValueError("a submission needs text or a file")
            return {"json": self._json_body(), "headers": headers}
        return {"data": self._form_fields(), "files": self._files(), "headers": headers}

    def _json_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "task": self.task,
            "input": {"text": self.text},
            "params": self.params,
            "metadata": self.metadata,
        }
        if self.deadline_seconds is not None:
            body["deadline_seconds"] = self.deadline_seconds
        if self.webhook is not None:
            body["webhook"] = self.webhook.model_dump(mode="json")
        if self.priority is not Priority.NORMAL:
            body["priority"] = self.priority.value
        return body

    def _form_fields(self) -> dict[str, str]:
        fields = {
            "task": self.task,
            "params": json.dumps(self.params),
            "metadata": json.dumps(self.metadata),
        }
        if self.deadline_seconds is not None:
            fields["deadline_seconds"] = str(self.deadline_seconds)
        if self.webhook is not None:
            fields["webhook"] = self.webhook.model_dump_json()
        if self.priority is not Priority.NORMAL:
            fields["priority"] = self.priority.value
        return fields

    def _files(self) -> dict[str, tuple[str, bytes, str]]:
        assert self.file is not None
        return {"file": (self.file.filename, self.file.content, self.file.content_type)}


@dataclass(frozen=True)
class Outcome:
    """What `map` yields for one input: its final job, or why it never got one.

    A job that failed is an outcome like any other (`job.status` says so, `job.error` why);
    `error` is set only when the submission itself was refused or the wait gave up.
    """

    index: int
    submission: Submission
    job: JobView | None = None
    error: JobrelayError | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the job ran to a result."""
        return self.job is not None and self.job.status.value == "succeeded"
