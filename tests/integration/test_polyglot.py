"""Workers in two languages on one contract: the Go worker (apps/worker-go) alone, and beside
the Python worker on one topic and one consumer group, on the real stack.

The `polyglot` tests here run on every profile with the Python worker and once more on the
redis profile with the Go worker alone; the side-by-side case starts its own stack with both.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration import profiles
from tests.integration import stack as stack_module
from tests.integration.helpers import classify, submit, submit_all, wait_done
from tests.integration.stack import Stack, client_headers

log = logging.getLogger(__name__)

# Enough jobs that each worker's sidecar reads several batches from the stream.
SIDE_BY_SIDE_JOBS = 300


@pytest.mark.polyglot
def test_the_record_names_the_worker_that_ran_it(client: httpx.Client, stack: Stack) -> None:
    url = submit(client, stack, {"task": "embed", "input": {"text": "who ran me?"}}).json()
    job = wait_done(client, url["status_url"])

    assert job["status"] == "succeeded", job
    implementation, _, replica = job["worker"].partition("/")
    assert implementation == ("go" if stack.worker == "go" else "python")
    assert replica.startswith("worker-")


@pytest.mark.polyglot
def test_a_task_the_go_worker_does_not_run_fails_at_once_saying_so(
    client: httpx.Client, stack: Stack
) -> None:
    if stack.worker != "go":
        pytest.skip("the Python worker runs every task")
    url = submit(client, stack, {"task": "summarize", "input": {"text": "A long story."}}).json()
    job = wait_done(client, url["status_url"])

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "capability_unavailable"
    assert job["error"]["retryable"] is False
    assert "summarize" in job["error"]["message"]
    assert job["attempts"] == 1  # failed at once, not redelivered until the dead letter
    assert job["model_calls"] == []


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The redis profile with the Python and the Go worker side by side (app id `worker`)."""
    if not profiles.go_pass():
        pytest.skip("the Go worker's pass is off (JOBRELAY_TEST_GO_WORKER=0, or no redis)")
    running = stack_module.start(tmp_path_factory.mktemp("stack-redis-both"), worker="both")
    try:
        yield running
    finally:
        stack_module.stop(running)


def _body(n: int) -> dict[str, Any]:
    text = f"side by side {n} {uuid.uuid4().hex}"  # unique: the model double counts per text
    if n % 2:
        return {"task": "embed", "input": {"text": text}}
    return classify(f"I love it! {text}")


def test_both_workers_split_one_topic_and_run_each_job_once(both: Stack) -> None:
    with httpx.Client(timeout=30, headers=client_headers()) as client:
        answers = submit_all(client, both, [_body(n) for n in range(SIDE_BY_SIDE_JOBS)])
        urls = [a["status_url"] for a in answers]
        deadline = time.monotonic() + 240
        jobs: list[dict[str, Any]] = []
        for url in urls:
            jobs.append(wait_done(client, url, timeout=max(deadline - time.monotonic(), 1)))

    assert Counter(j["status"] for j in jobs) == {"succeeded": SIDE_BY_SIDE_JOBS}
    # Each job claimed once, by one worker, and every model call made under that claim.
    assert {j["attempts"] for j in jobs} == {1}
    assert all({c["attempt"] for c in j["model_calls"]} == {1} for j in jobs)
    assert all(j["error"] is None for j in jobs)
    split = Counter(j["worker"].partition("/")[0] for j in jobs)
    log.info("jobs run per worker: %s", dict(split))
    assert set(split) == {"python", "go"}, split
    # One consumer group: the broker hands each worker a share, neither gets them all.
    assert min(split.values()) >= SIDE_BY_SIDE_JOBS // 10, split
    # The model saw each job's own text once: no job ran twice, in either language.
    assert both.model_double is not None
    twice = [j["id"] for j in jobs if both.model_double.double.calls(j["input"]["text"]) != 1]
    assert twice == []
