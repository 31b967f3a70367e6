"""Dead letters are visible and replayable: a job whose model always fails is dead-lettered,
listed by the admin endpoint, and replayed by an operator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.helpers import classify, submit, wait_done
from tests.integration.stack import OPERATOR, Stack, client_headers

_OF_DEFAULT = {"tenant": "default"}


@pytest.fixture
def operator() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers=client_headers(OPERATOR), params=_OF_DEFAULT) as c:
        yield c


def _dead_letters(operator: httpx.Client, stack: Stack) -> dict[str, Any]:
    resp = operator.get(f"{stack.url('intake')}/admin/dead-letters")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_dead_lettered_job_is_listed_and_can_be_replayed(
    client: httpx.Client, operator: httpx.Client, stack: Stack
) -> None:
    text = f"Never works. [fail:500:always] {uuid.uuid4().hex}"
    job = submit(client, stack, classify(text)).json()
    failed = wait_done(client, job["status_url"], timeout=180)
    assert failed["status"] == "failed"

    deadline = time.monotonic() + 10  # the list is written just after the job is failed
    while job["id"] not in {j["id"] for j in _dead_letters(operator, stack)["jobs"]}:
        assert time.monotonic() < deadline, "the dead-lettered job is not listed"
        time.sleep(0.2)

    replay = operator.post(f"{stack.url('intake')}/admin/dead-letters/{job['id']}/replay")
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] in ("queued", "running")  # a worker may already have it
    assert job["id"] not in {j["id"] for j in _dead_letters(operator, stack)["jobs"]}
    # It runs again and, its model still failing, ends failed again with its history. Waited
    # for, not left behind: a job still retrying would hold a Kafka partition (Dapr retries a
    # delivery in place) and add handbacks to the metrics later tests count.
    again = wait_done(client, job["status_url"], timeout=180)
    assert again["status"] == "failed"
    assert again["attempts"] > failed["attempts"]
    assert again["model_calls"][: len(failed["model_calls"])] == failed["model_calls"]


def test_only_dead_lettered_jobs_are_replayed(
    client: httpx.Client, operator: httpx.Client, stack: Stack
) -> None:
    job = submit(client, stack, classify("I love it.")).json()
    wait_done(client, job["status_url"])

    resp = operator.post(f"{stack.url('intake')}/admin/dead-letters/{job['id']}/replay")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_dead_lettered"


def test_the_admin_routes_are_for_operators_only(client: httpx.Client, stack: Stack) -> None:
    """A tenant may not list or replay dead letters, not even its own: a replay spends the
    model's budget again."""
    base = f"{stack.url('intake')}/admin/dead-letters"
    for resp in (
        client.get(base, params=_OF_DEFAULT),
        client.post(f"{base}/replay", params=_OF_DEFAULT),
        client.post(f"{base}/{'0' * 32}/replay", params=_OF_DEFAULT),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "operator_only"
