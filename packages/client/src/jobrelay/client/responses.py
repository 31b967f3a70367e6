"""Reading the API's answers: a job, or the error body as an exception."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
from httpx_sse import ServerSentEvent

from jobrelay.client.errors import ApiError, JobFailed
from jobrelay.contract import JobStatus, JobView

# Used when an answer that should carry Retry-After does not (a proxy stripped it, say).
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# A Retry-After is obeyed, but never past this: a misconfigured proxy must not park a client
# for an hour on a job that takes seconds.
MAX_RETRY_AFTER_SECONDS = 30.0


def retry_after(response: httpx.Response) -> float:
    """Seconds the server asked for, clamped; only the delta-seconds form is used by jobrelay."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def api_error(response: httpx.Response) -> ApiError:
    """The error body as an exception; a body that is not jobrelay's keeps the HTTP status."""
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.text[:200] or "no body"
    after = retry_after(response) if "Retry-After" in response.headers else None
    return ApiError(response.status_code, code, message, after)


def job_or_raise(response: httpx.Response) -> JobView:
    """A 200 or 202 answer's job; ApiError for anything else."""
    if response.status_code in (200, 202):
        return JobView.model_validate_json(response.content)
    raise api_error(response)


def is_job_event(event: ServerSentEvent) -> bool:
    """False for the stream's keepalive comments: httpx-sse hands one on as an event with
    no data (and the last id seen) once any event before it carried an id."""
    return bool(event.data)


def job_of_event(event: ServerSentEvent) -> JobView:
    return JobView.model_validate(json.loads(event.data))


@dataclass(frozen=True, slots=True)
class Delta:
    """Text a chat or summarize job's model added since the last Delta (`event: delta`)."""

    text: str
    id: str  # its event id, `{seq}.{n}`: what a resume sends back as Last-Event-ID


StreamEvent = JobView | Delta


def stream_event(event: ServerSentEvent) -> tuple[StreamEvent, str] | None:
    """A stream event (the job, or a Delta of its text) and its id; None for a keepalive
    comment, which both clients skip (a batch slower than the 15 s keepalive would otherwise
    fail on it)."""
    if not is_job_event(event):
        return None
    if event.event == "delta":
        return Delta(str(json.loads(event.data)["text"]), event.id), event.id
    return job_of_event(event), event.id


def checked(job: JobView) -> JobView:
    """The job if it succeeded; JobFailed (with the job's error code) if it ended otherwise."""
    if job.status is not JobStatus.SUCCEEDED:
        raise JobFailed(job)
    return job
