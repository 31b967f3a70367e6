"""The client SDK against a FAKE status server (httpx.MockTransport): timing and error
handling that the real stack answers too fast to show. End-to-end behaviour is in
tests/integration/test_client_sdk.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest

from jobrelay.client import (
    ApiError,
    Client,
    ClientSettings,
    Delta,
    JobFailed,
    Submission,
    Upload,
    WaitTimeout,
)
from jobrelay.contract import JobInput, JobRecord, JobStatus, JobView, Priority

JOB = JobRecord.new("embed", JobInput(text="hi"), {}, {})


def view(status: JobStatus) -> dict[str, Any]:
    record = JOB.model_copy(update={"status": status})
    return JobView.of(record, "http://status").model_dump(mode="json")


def fake(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client(ClientSettings(intake_url="http://intake", status_url="http://status"), http=http)


def test_polling_waits_as_long_as_retry_after_says() -> None:
    answers = [(202, "0.3"), (202, "0.3"), (200, None)]
    asked: list[float] = []

    def status(request: httpx.Request) -> httpx.Response:
        asked.append(time.monotonic())
        code, after = answers.pop(0)
        headers = {"Retry-After": after} if after else {}
        done = JobStatus.SUCCEEDED if code == 200 else JobStatus.RUNNING
        return httpx.Response(code, json=view(done), headers=headers)

    client = fake(status)
    client.use_events = False
    job = client.wait(JOB.id)
    assert job.status is JobStatus.SUCCEEDED
    gaps = [later - earlier for earlier, later in pairwise(asked)]
    assert len(gaps) == 2
    assert all(gap >= 0.29 for gap in gaps), gaps


def test_wait_gives_up_at_its_timeout() -> None:
    client = fake(
        lambda _: httpx.Response(202, json=view(JobStatus.QUEUED), headers={"Retry-After": "1"})
    )
    client.use_events = False
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        client.wait(JOB.id, timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_error_body_becomes_an_exception_with_its_code() -> None:
    body = {"error": {"code": "invalid_params", "message": "labels: too few"}}
    client = fake(lambda _: httpx.Response(422, json=body))
    with pytest.raises(ApiError) as refused:
        client.submit(Submission("classify", text="x"))
    assert (refused.value.status, refused.value.code) == (422, "invalid_params")


def test_a_job_that_did_not_succeed_raises_its_error_code() -> None:
    failed = view(JobStatus.FAILED)
    failed["error"] = {"code": "model_unavailable", "message": "down", "retryable": True}
    client = fake(lambda _: httpx.Response(200, json=failed))
    client.use_events = False
    with pytest.raises(JobFailed) as raised:
        client.wait(JOB.id)
    assert raised.value.code == "model_unavailable"
    assert client.wait(JOB.id, check=False).status is JobStatus.FAILED


def test_file_submissions_go_as_multipart_with_the_api_key() -> None:
    seen: list[httpx.Request] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=view(JobStatus.QUEUED))

    http = httpx.Client(transport=httpx.MockTransport(intake))
    settings = ClientSettings(intake_url="http://intake", api_key="k-123")  # type: ignore[arg-type]
    upload = Submission(
        "classify", file=Upload(b"hello", "note.txt", "text/plain"), params={"labels": ["a", "b"]}
    )
    Client(settings, http=http).submit(upload)
    request = seen[0]
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="params"' in request.content
    assert json.dumps({"labels": ["a", "b"]}).encode() in request.content


def test_a_priority_is_sent_only_when_not_the_default() -> None:
    seen: list[dict[str, Any]] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(202, json=view(JobStatus.QUEUED))

    client = fake(intake)
    client.submit(Submission("embed", text="hi", priority=Priority.HIGH))
    client.submit(Submission("embed", text="hi"))

    assert seen[0]["priority"] == "high"
    assert "priority" not in seen[1]


def test_the_streams_keepalive_comments_are_not_taken_for_events() -> None:
    """httpx-sse passes a comment on as an event with no data once an event carried an id."""

    def event(status: JobStatus, seq: int) -> str:
        return f"event: {status.value}\nid: {seq}\ndata: {json.dumps(view(status))}\n\n"

    body = event(JobStatus.RUNNING, 1) + ": keepalive\n\n" + event(JobStatus.SUCCEEDED, 2)

    def status(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/events")
        return httpx.Response(200, text=body, headers={"Content-Type": "text/event-stream"})

    states = [job.status for job in fake(status).stream(JOB.id) if isinstance(job, JobView)]

    assert states == [JobStatus.RUNNING, JobStatus.SUCCEEDED]


class Broken(httpx.SyncByteStream):
    """A response body that sends `sent`, then breaks as a dropped connection does."""

    def __init__(self, sent: bytes) -> None:
        self.sent = sent

    def __iter__(self) -> Iterator[bytes]:
        yield self.sent
        raise httpx.ReadError("connection reset")


def test_a_stream_yields_the_text_and_resumes_after_the_last_delta_seen() -> None:
    """The connection drops after the first delta; the reconnect names it in Last-Event-ID
    and the text goes on from there: nothing seen twice, nothing missed."""

    def event(kind: str, event_id: str, data: dict[str, Any]) -> str:
        return f"event: {kind}\nid: {event_id}\ndata: {json.dumps(data)}\n\n"

    running = event("running", "1", view(JobStatus.RUNNING))
    first = event("delta", "1.1", {"text": "Hello"})
    rest = event("delta", "1.2", {"text": " world"}) + event(
        "succeeded", "2", view(JobStatus.SUCCEEDED)
    )
    asked: list[str | None] = []

    def status(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Last-Event-ID"))
        if len(asked) == 1:
            headers = {"Content-Type": "text/event-stream"}
            return httpx.Response(200, stream=Broken((running + first).encode()), headers=headers)
        return httpx.Response(200, text=rest, headers={"Content-Type": "text/event-stream"})

    events = list(fake(status).stream(JOB.id))
    assert asked == [None, "1.1"]
    texts = [e.text for e in events if isinstance(e, Delta)]
    assert texts == ["Hello", " world"]
    assert [e.status for e in events if isinstance(e, JobView)] == [
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
