"""Jobs through the real stack: intake -> Dapr pub/sub (Redis Streams) -> worker -> the local
model -> Dapr state (Redis) -> status. Every hop is the real thing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from jobrelay.contract import JobInput, JobMessage, JobRecord, utcnow
from tests.integration.helpers import SENTIMENT, classify, store_state, submit, wait_done
from tests.integration.stack import Stack


def test_submit_answers_202_at_once_with_where_to_look(client: httpx.Client, stack: Stack) -> None:
    resp = submit(client, stack, {**classify("Lovely weather today."), "metadata": {"ref": "a1"}})

    assert resp.status_code == 202
    job = resp.json()
    assert job["status"] == "queued"
    assert job["status_url"] == f"{stack.url('status')}/v1/jobs/{job['id']}"
    assert resp.headers["Location"] == job["status_url"]
    assert int(resp.headers["Retry-After"]) >= 1
    assert job["metadata"] == {"ref": "a1"}


@pytest.mark.polyglot
def test_obvious_sentiments_get_the_right_label(client: httpx.Client, stack: Stack) -> None:
    cases = {
        "I love this product, it works perfectly!": "positive",
        "Absolutely fantastic service, thank you so much!": "positive",
        "Terrible. It broke after one day and support never answered.": "negative",
        "This is the worst purchase I have ever made.": "negative",
        "I hate it. Awful.": "negative",
        "The package arrived on Tuesday.": "neutral",
        "The meeting is scheduled for 3 pm.": "neutral",
    }
    urls = {text: submit(client, stack, classify(text)).json()["status_url"] for text in cases}

    for text, expected in cases.items():
        job = wait_done(client, urls[text])
        assert job["status"] == "succeeded", job
        assert job["result"]["output"]["label"] == expected, (text, job["result"])
        assert job["result"]["model"] == "e5-bge-small"  # classify's default (local-classify)
        assert job["result"]["usage"]["prompt_tokens"] > 0
        assert job["attempts"] == 1
        assert job["started_at"] <= job["finished_at"]


@pytest.mark.polyglot
def test_embed_returns_the_models_vector(client: httpx.Client, stack: Stack) -> None:
    url = submit(client, stack, {"task": "embed", "input": {"text": "hello"}}).json()["status_url"]

    job = wait_done(client, url)
    assert job["status"] == "succeeded"
    vector = job["result"]["output"]["embedding"]
    assert len(vector) == job["result"]["output"]["dimensions"] == 384
    assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-4)


def test_an_unknown_job_is_404_with_an_error_body(client: httpx.Client, stack: Stack) -> None:
    for job_id in ("0" * 32, "not-a-job-id"):
        resp = client.get(f"{stack.url('status')}/v1/jobs/{job_id}")
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"task": "dance", "input": {"text": "x"}}, 400, "unknown_task"),
        ({**classify("x"), "params": {"labels": ["only"]}}, 422, "invalid_params"),
        ({**classify("x"), "params": {}}, 422, "invalid_params"),
        ({"task": "classify", "params": {"labels": SENTIMENT}}, 422, "input_required"),
        ({**classify(""), "task": "classify"}, 422, "validation_error"),
        ({**classify("x"), "deadline_seconds": -1}, 422, "validation_error"),
    ],
    ids=["unknown-task", "one-label", "no-labels", "no-input", "empty-text", "bad-deadline"],
)
def test_bad_submissions_are_refused_with_a_stable_code(
    client: httpx.Client, stack: Stack, body: dict[str, Any], status: int, code: str
) -> None:
    resp = submit(client, stack, body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_a_body_that_is_not_json_is_refused(client: httpx.Client, stack: Stack) -> None:
    resp = client.post(
        f"{stack.url('intake')}/v1/jobs",
        content=b'{"task": "classify"',
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == {
        "code": "validation_error",
        "message": resp.json()["error"]["message"],
    }
    assert "not valid JSON" in resp.json()["error"]["message"]


def _store_directly(client: httpx.Client, stack: Stack, record: JobRecord) -> None:
    """Write a record through a sidecar's state API, as intake would, but without publishing."""
    store_state(client, stack, f"job:{record.id}", record.model_dump_json())


def _publish_directly(client: httpx.Client, stack: Stack, data: dict[str, Any]) -> None:
    resp = client.post(f"{stack.sidecar('intake')}/v1.0/publish/pubsub/jobs", json=data)
    assert resp.status_code == 204, resp.text


def test_a_pending_job_answers_202_with_retry_after(client: httpx.Client, stack: Stack) -> None:
    record = JobRecord.new("classify", JobInput(text="waiting"), {"labels": SENTIMENT}, {})
    _store_directly(client, stack, record)  # stored, never published: it stays queued

    resp = client.get(f"{stack.url('status')}/v1/jobs/{record.id}")
    assert resp.status_code == 202
    assert resp.headers["Retry-After"] == "1"
    assert resp.json()["status"] == "queued"


@pytest.mark.polyglot
def test_a_redelivered_message_does_not_run_the_job_again(
    client: httpx.Client, stack: Stack
) -> None:
    url = submit(client, stack, classify("What a wonderful experience.")).json()["status_url"]
    first = wait_done(client, url)

    _publish_directly(
        client,
        stack,
        JobMessage(job_id=first["id"], task="classify", sent_at=utcnow()).model_dump(mode="json"),
    )
    time.sleep(1.5)  # well past the ~10 ms the worker needs to (not) run it again

    again = client.get(url).json()
    assert again == first


@pytest.mark.polyglot
def test_a_task_no_worker_knows_fails_and_says_why(client: httpx.Client, stack: Stack) -> None:
    record = JobRecord.new("transcribe", JobInput(text="audio?"), {}, {})
    _store_directly(client, stack, record)
    _publish_directly(
        client,
        stack,
        JobMessage(job_id=record.id, task="transcribe", sent_at=utcnow()).model_dump(mode="json"),
    )

    job = wait_done(client, f"{stack.url('status')}/v1/jobs/{record.id}")
    assert job["status"] == "failed"
    # The Go worker runs a subset of the tasks, and says so with the contract's code for a
    # task no model here can do (README, Polyglot workers).
    expected = "capability_unavailable" if stack.worker == "go" else "unknown_task"
    assert job["error"]["code"] == expected
    assert "transcribe" in job["error"]["message"]


@pytest.mark.polyglot
def test_a_poison_message_does_not_stop_the_worker(client: httpx.Client, stack: Stack) -> None:
    _publish_directly(client, stack, {"not": "a job"})

    url = submit(client, stack, classify("I love it!")).json()["status_url"]
    assert wait_done(client, url)["status"] == "succeeded"
    assert client.get(f"{stack.url('worker')}/healthz").status_code == 200


@pytest.mark.polyglot
def test_every_app_reports_its_sidecar_healthy(client: httpx.Client, stack: Stack) -> None:
    for app in ("intake", "worker", "status"):
        resp = client.get(f"{stack.url(app)}/healthz")
        assert resp.status_code == 200, (app, resp.text)
