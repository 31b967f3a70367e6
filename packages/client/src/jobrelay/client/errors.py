"""What the client raises: every error carries a stable `code` a caller may branch on.

The codes are the server's own (docs/api.md, "Errors", and a failed job's `error.code`); the
client adds only `connection_error`, `stream_unavailable` and `wait_timeout`, for what
happens before or after the server could answer.
"""

from __future__ import annotations

from jobrelay.contract import JobView


class JobrelayError(Exception):
    """Base of every client error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ApiError(JobrelayError):
    """The API answered with an error body, `{"error": {"code", "message"}}`."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(code, message)
        self.status = status
        self.retry_after = retry_after


class ConnectionFailed(JobrelayError):
    """The API could not be reached at all."""

    def __init__(self, message: str) -> None:
        super().__init__("connection_error", message)


class StreamUnavailable(JobrelayError):
    """The event stream could not be read; `wait` falls back to polling."""

    def __init__(self, message: str) -> None:
        super().__init__("stream_unavailable", message)


class WaitTimeout(JobrelayError):
    """The job was still pending when the caller's timeout ran out; it goes on running."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__("wait_timeout", f"job {job_id} still pending after {timeout:g}s")
        self.job_id = job_id


class JobFailed(JobrelayError):
    """The job ended without a result: failed, cancelled or expired.

    `code` is the job's `error.code` (e.g. `model_unavailable`), or its status when the job
    carries no error (a cancelled or expired job); `job` is the whole final record.
    """

    def __init__(self, job: JobView) -> None:
        code = job.error.code if job.error else job.status.value
        message = job.error.message if job.error else f"the job was {job.status.value}"
        super().__init__(code, message)
        self.job = job
