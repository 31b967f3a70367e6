"""The job API against the real stack: uploads, idempotency, deadlines, cancellation, waits,
live events, webhooks and the reference client's routes."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from jobrelay.contract import JobInput, JobRecord
from tests.integration.helpers import (
    SENTIMENT,
    classify,
    read_events,
    store_state,
    submit,
    wait_done,
    webhook_receiver,
)
from tests.integration.stack import API_KEYS, WEBHOOK_SECRET, Stack


def _png(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny, grey) PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _state(client: httpx.Client, stack: Stack, store: str, key: str) -> bytes:
    resp = client.get(f"{stack.sidecar('status')}/v1.0/state/{store}/{key}")
    assert resp.status_code in (200, 204), resp.text
    return resp.content


# --- file uploads -------------------------------------------------------------------------


@pytest.mark.polyglot
def test_a_text_document_upload_is_classified_and_its_file_released(
    client: httpx.Client, stack: Stack
) -> None:
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs",
        files={"file": ("review.txt", b"I love this product, it works perfectly!", "text/plain")},
        data={"task": "classify", "params": json.dumps({"labels": SENTIMENT})},
    )
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    assert queued["input"] == {
        "text": None,
        "filename": "review.txt",
        "content_type": "text/plain",
        "size": 40,
    }

    job = wait_done(client, queued["status_url"])
    assert job["status"] == "succeeded", job
    assert job["result"]["output"]["label"] == "positive"
    # The claim check: the file lived under its own key, and went with the finished job.
    assert _state(client, stack, "statestore", f"file:{job['id']}:0") == b""


def test_an_upload_over_the_limit_is_refused_while_streaming(
    client: httpx.Client, stack: Stack
) -> None:
    limit = 10 * 1024 * 1024
    boundary = "jobrelay-test-boundary"
    sent = 0

    def body() -> Iterator[bytes]:
        # Chunked, with no Content-Length: the limit must be enforced as bytes arrive.
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\n'
            f'embed\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        block = b"a" * 65536
        while sent < 3 * limit:
            sent += len(block)
            yield block

    try:
        resp = client.post(
            f"{stack.url('intake')}/v1/jobs",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    except httpx.HTTPError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "file_too_large"


def test_an_upload_declared_too_large_is_refused_before_reading(stack: Stack) -> None:
    # Headers that announce 50 MiB, and no body at all: the answer must come anyway.
    port = stack.ports["intake"].app
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {API_KEYS['default']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"


def test_a_file_type_the_task_cannot_take_is_415(client: httpx.Client, stack: Stack) -> None:
    # classify reads text, PDFs and most images (OCR first), but not a GIF.
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs",
        files={"file": ("cat.gif", b"GIF89a" + bytes(64), "image/gif")},
        data={"task": "classify", "params": json.dumps({"labels": SENTIMENT})},
    )
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_media_type"


def test_an_image_task_without_a_file_is_refused(client: httpx.Client, stack: Stack) -> None:
    resp = submit(client, stack, {"task": "describe_image", "input": {"text": "a cat"}})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "file_required"


# --- the reference client's routes ----------------------------------------------------------


def test_api_process_takes_an_image_and_its_results_url_answers_in_the_reference_contract(
    client: httpx.Client, stack: Stack
) -> None:
    resp = client.post(
        f"{stack.url('intake')}/api/process", files={"file": ("photo.png", _png(), "image/png")}
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"id", "results_url"}
    assert body["results_url"] == f"{stack.url('status')}/api/results/{body['id']}"

    events = read_events(client, f"{stack.url('status')}/v1/jobs/{body['id']}/events")
    result = wait_done(client, body["results_url"])
    # A grey square holds no text, and the result says so rather than inventing any.
    assert result == {
        "id": body["id"],
        "status": "completed",
        "data": {"result": "*No text was found in the document.*"},
    }
    assert events[-1].data["status"] == "succeeded"


# --- idempotency ----------------------------------------------------------------------------


def test_racing_submits_with_one_idempotency_key_make_one_job(
    client: httpx.Client, stack: Stack
) -> None:
    body = classify("Racing requests, one job.")
    headers = {"Idempotency-Key": f"race-{id(body)}"}

    def send(_: int) -> httpx.Response:
        return submit(client, stack, body, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))

    assert {r.status_code for r in answers} <= {200, 202}
    assert len({r.json()["id"] for r in answers}) == 1
    job = wait_done(client, answers[0].json()["status_url"])
    assert (job["status"], job["attempts"]) == ("succeeded", 1)
    # Later the same key still answers with that job, now finished.
    again = submit(client, stack, body, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == job["id"]


def test_one_idempotency_key_with_a_different_body_is_409(
    client: httpx.Client, stack: Stack
) -> None:
    headers = {"Idempotency-Key": "reused-for-something-else"}
    assert submit(client, stack, classify("first"), headers=headers).status_code == 202

    resp = submit(client, stack, classify("second"), headers=headers)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "idempotency_key_reused"


# --- deadlines, cancellation, waiting ---------------------------------------------------------


@pytest.mark.polyglot
def test_a_job_not_started_by_its_deadline_expires(client: httpx.Client, stack: Stack) -> None:
    url = submit(client, stack, classify("too late", deadline_seconds=0.001)).json()["status_url"]
    job = wait_done(client, url)
    assert job["status"] == "expired"
    assert job["attempts"] == 0
    assert job["result"] is None


def _store_queued(client: httpx.Client, stack: Stack) -> JobRecord:
    record = JobRecord.new("classify", JobInput(text="never published"), {"labels": SENTIMENT}, {})
    store_state(client, stack, f"job:{record.id}", record.model_dump_json())
    return record


def test_cancelling_a_queued_job_then_again(client: httpx.Client, stack: Stack) -> None:
    record = _store_queued(client, stack)
    url = f"{stack.url('status')}/v1/jobs/{record.id}"

    first = client.delete(url)
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert client.get(url).json()["status"] == "cancelled"

    again = client.delete(url)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    assert client.delete(f"{stack.url('status')}/v1/jobs/{'0' * 32}").status_code == 404


@pytest.mark.polyglot
def test_prefer_wait_answers_with_the_result(client: httpx.Client, stack: Stack) -> None:
    resp = submit(client, stack, classify("I hate it. Awful."), headers={"Prefer": "wait=10"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Preference-Applied"] == "wait=10"
    job = resp.json()
    assert job["status"] == "succeeded"
    assert job["result"]["output"]["label"] == "negative"


# --- live events --------------------------------------------------------------------------------


@pytest.mark.polyglot
def test_the_event_stream_ends_with_the_terminal_record(client: httpx.Client, stack: Stack) -> None:
    job = submit(client, stack, classify("What a wonderful, delightful experience.")).json()
    events = read_events(client, f"{stack.url('status')}/v1/jobs/{job['id']}/events")

    assert events, "at least the terminal event"
    assert events[-1].event == "succeeded"
    assert events[-1].data["result"]["output"]["label"] == "positive"
    ids = [int(e.id or -1) for e in events]
    assert ids == sorted(set(ids))
    assert all(e.data["status"] != "succeeded" for e in events[:-1])


def test_the_event_stream_resumes_after_last_event_id(client: httpx.Client, stack: Stack) -> None:
    job = submit(
        client, stack, classify("Great value, highly recommend"), headers={"Prefer": "wait=10"}
    ).json()
    url = f"{stack.url('status')}/v1/jobs/{job['id']}/events"
    everything = read_events(client, url)
    terminal = everything[-1]
    assert terminal.event == "succeeded"

    assert read_events(client, url, {"Last-Event-ID": terminal.id or ""}) == []
    resumed = read_events(client, url, {"Last-Event-ID": str(int(terminal.id or 0) - 1)})
    assert [e.id for e in resumed] == [terminal.id]


def test_the_event_stream_of_an_unknown_job_is_404(client: httpx.Client, stack: Stack) -> None:
    resp = client.get(f"{stack.url('status')}/v1/jobs/{'0' * 32}/events")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "job_not_found"


# --- webhooks --------------------------------------------------------------------------------


@pytest.mark.polyglot
def test_a_webhook_arrives_signed_with_the_documented_secret(
    client: httpx.Client, stack: Stack
) -> None:
    with webhook_receiver() as receiver:
        hook = {"url": receiver.url, "events": ["running", "completed"]}
        job = submit(client, stack, classify("I love it!", webhook=hook)).json()
        received = receiver.wait_for(2)

    verifier = Webhook(WEBHOOK_SECRET)
    bodies: list[dict[str, Any]] = [verifier.verify(r.body, r.headers) for r in received]
    assert [b["status"] for b in bodies] == ["running", "succeeded"]
    assert all(b["id"] == job["id"] for b in bodies)
    # Job events carry no contents: status reads them back for the body.
    assert [b["input"]["text"] for b in bodies] == ["I love it!", "I love it!"]
    stored = client.get(job["status_url"]).json()["result"]
    assert stored is not None
    assert bodies[1]["result"] == stored
    assert received[0].headers["webhook-id"] != received[1].headers["webhook-id"]

    deliveries = _deliveries(client, job["status_url"], count=2)
    # `running`, as the hook asked, is the old name of `start`: accepted, and read as it.
    assert [(d["event"], d["delivered"]) for d in deliveries] == [
        ("start", True),
        ("completed", True),
    ]


def _deliveries(client: httpx.Client, url: str, count: int) -> list[dict[str, Any]]:
    """The job's recorded deliveries, once `count` are there (recording follows sending)."""
    deadline = time.monotonic() + 10
    while True:
        deliveries: list[dict[str, Any]] = client.get(url).json()["webhook_deliveries"]
        if len(deliveries) >= count or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.05)


def test_a_failed_webhook_is_recorded_and_leaves_the_job_alone(
    client: httpx.Client, stack: Stack
) -> None:
    with webhook_receiver() as receiver:
        receiver.answer = 500
        job = submit(
            client, stack, classify("The store opens at nine.", webhook={"url": receiver.url})
        ).json()
        receiver.wait_for(1)

    deliveries = _deliveries(client, job["status_url"], count=1)
    assert client.get(job["status_url"]).json()["status"] == "succeeded"
    first = deliveries[0]
    assert (first["event"], first["attempt"], first["delivered"]) == ("completed", 1, False)
    assert first["status_code"] == 500


def test_a_webhook_that_is_not_http_is_refused(client: httpx.Client, stack: Stack) -> None:
    resp = submit(client, stack, classify("x", webhook={"url": "ftp://example.test/hook"}))
    assert resp.status_code == 422


# --- the API descriptions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "paths"),
    [
        ("intake", {"/v1/jobs", "/api/process", "/healthz"}),
        ("status", {"/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/api/results/{job_id}"}),
    ],
)
def test_both_apis_serve_openapi_with_their_routes(
    client: httpx.Client, stack: Stack, app: str, paths: set[str]
) -> None:
    spec = client.get(f"{stack.url(app)}/openapi.json").json()
    assert paths <= set(spec["paths"])
