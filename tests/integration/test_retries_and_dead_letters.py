"""A model that fails: retried under Dapr's resiliency policy, then dead-lettered, on every
component profile. The failures come from the flaky model test double
(tests/doubles/flaky_model.py) in front of the real local model; everything between intake
and the model is the real broker, store and daprd."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.stack import Stack, client_headers

SENTIMENT = ["positive", "negative", "neutral"]
# resiliency.yaml: 10 retries, exponential from 0.5 s capped at 15 s, about 50 s in all; the
# dead letter then takes one more delivery. Twice that is a bound no healthy stack reaches.
DEAD_LETTER_WITHIN_SECONDS = 120


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, headers=client_headers()) as c:
        yield c


def _submit_classify(client: httpx.Client, stack: Stack, text: str) -> str:
    body = {"task": "classify", "input": {"text": text}, "params": {"labels": SENTIMENT}}
    resp = client.post(f"{stack.url('intake')}/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    url: str = resp.json()["status_url"]
    return url


def _wait_done(client: httpx.Client, url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(url)
        if resp.status_code == 200:
            body: dict[str, Any] = resp.json()
            return body
        assert resp.status_code == 202, resp.text
        assert time.monotonic() < deadline, f"still pending after {timeout}s: {resp.text}"
        time.sleep(0.25)


def _served_faults(stack: Stack, text: str) -> int:
    assert stack.model_double is not None
    return stack.model_double.double.faults_served(text)


@pytest.mark.polyglot
def test_a_job_whose_model_fails_past_the_workers_retries_succeeds_on_a_redelivery(
    client: httpx.Client, stack: Stack
) -> None:
    # The worker tries a model 3 times per delivery (config/models.yaml: max_attempts), so
    # 4 failures spend the first delivery; the broker's redelivery (the resiliency policy)
    # then gets the 4th failure and the real answer. Unique per run and profile: the double
    # counts failures per exact text.
    text = f"I love this product! [fail:500:4] {uuid.uuid4().hex}"

    job = _wait_done(client, _submit_classify(client, stack, text), timeout=60)

    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, job  # one claim per delivery
    assert job["result"]["output"]["label"] == "positive"  # the real model's answer
    assert job["error"] is None
    codes = [c["status_code"] for c in job["model_calls"]]  # then the labels' embeddings
    assert codes[:4] == [500, 500, 500, 500]
    assert codes[4:]
    assert all(code is None for code in codes[4:])
    assert _served_faults(stack, text) == 4


@pytest.mark.polyglot
def test_a_job_whose_model_always_fails_is_dead_lettered_and_failed_with_its_last_error(
    client: httpx.Client, stack: Stack
) -> None:
    text = f"This never works. [fail:500:always] {uuid.uuid4().hex}"
    started = time.monotonic()

    job = _wait_done(
        client, _submit_classify(client, stack, text), timeout=DEAD_LETTER_WITHIN_SECONDS
    )

    assert job["status"] == "failed", job
    # Redelivered under resiliency.yaml (10 retries) before the dead letter.
    assert job["attempts"] > 1, job
    assert job["error"]["code"] == "model_error", job
    assert "500" in job["error"]["message"], job
    assert job["result"] is None
    assert _served_faults(stack, text) >= job["attempts"]
    # Not before the policy's retries had their time (0.5 s growing x1.5, jittered).
    assert time.monotonic() - started > 5
