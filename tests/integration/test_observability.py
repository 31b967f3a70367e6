"""One trace per job across every app and sidecar, and /metrics that count what happened.

The spans come from the real apps and the real daprd sidecars, exported over OTLP/HTTP to a
receiver in this process (tests/integration/otlp.py); failures come from the flaky model
test double in front of the real local model.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx

from tests.integration.helpers import classify, read_events, submit, wait_done
from tests.integration.otlp import ReceivedSpan
from tests.integration.stack import Stack

JOB_ID = "jobrelay.job.id"
APPS = ("jobrelay-intake", "jobrelay-worker", "jobrelay-status")
SIDECARS = ("intake", "worker", "status")  # daprd names its spans by app id
_DELIVERY = re.compile(r"POST /events/pubsub/jobs(-(high|normal|low)-[0-9]+)?")


def _is_delivery(span: ReceivedSpan) -> bool:
    """The worker's span of a job's delivery: its route names the job's lane topic
    (`jobs-{priority}-{shard}`, jobrelay.lanes), or `jobs` for a message sent before lanes."""
    return _DELIVERY.fullmatch(span.name) is not None


def _submit_and_finish(client: httpx.Client, stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    resp = submit(client, stack, body)
    assert resp.status_code == 202, resp.text
    return wait_done(client, resp.json()["status_url"], timeout=60)


def _submit_and_follow(client: httpx.Client, stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    """Submit, then follow the job's event stream to its end: status then takes part in the
    job (its events are published to it), as it does for no job nobody watches."""
    assert stack.model_double is not None
    stack.model_double.double.delay_seconds = 1.0  # the stream opens while the job runs
    try:
        resp = submit(client, stack, body)
        assert resp.status_code == 202, resp.text
        read_events(client, f"{resp.json()['status_url']}/events", timeout=60)
    finally:
        stack.model_double.double.delay_seconds = 0.0
    return wait_done(client, resp.json()["status_url"], timeout=60)


def _job_trace(job_id: str) -> Callable[[list[ReceivedSpan]], bool]:
    """Done when the submit, the delivery and its sidecar's span, a GenAI span, a poll's
    span and every app's and sidecar's spans in the job's trace are in. (Each process
    exports its spans in batches of its own: one part can arrive seconds after another.)"""

    def done(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.attributes.get(JOB_ID) == job_id]
        submit_spans = [
            s for s in mine if s.service == "jobrelay-intake" and s.name == "POST /v1/jobs"
        ]
        if not submit_spans:
            return False
        trace_id = submit_spans[0].trace_id
        in_trace = {s.service for s in spans if s.trace_id == trace_id}
        genai = any("gen_ai.usage.input_tokens" in s.attributes for s in mine)
        ids = {s.span_id for s in spans}
        delivered = any(_is_delivery(s) and s.parent_span_id in ids for s in mine)
        polled = any(s.name == "GET /v1/jobs/{job_id}" for s in mine)
        return genai and delivered and polled and set(APPS) | set(SIDECARS) <= in_trace

    return done


def test_a_job_is_one_trace_across_intake_worker_status_and_their_sidecars(
    client: httpx.Client, stack: Stack
) -> None:
    assert stack.otlp is not None
    job = _submit_and_follow(client, stack, classify(f"I love it. {uuid.uuid4().hex}"))
    assert job["status"] == "succeeded", job

    spans = stack.otlp.receiver.wait_for(_job_trace(job["id"]))

    mine = [s for s in spans if s.attributes.get(JOB_ID) == job["id"]]
    (submitted,) = [s for s in mine if s.name == "POST /v1/jobs"]
    trace_id = submitted.trace_id
    in_trace = [s for s in spans if s.trace_id == trace_id]
    services = Counter(s.service for s in in_trace)
    assert set(APPS) | set(SIDECARS) <= set(services), services
    # Every span our apps made in the job's trace names the job.
    unlabelled = [
        (s.service, s.name)
        for s in in_trace
        if s.service in APPS and s.attributes.get(JOB_ID) != job["id"]
    ]
    assert not unlabelled
    # The worker's work on the job is in its trace, whatever trace its delivery came in: the
    # publish carries the submit's context in the CloudEvent, and should a delivery come
    # without it, the run span takes the stored context.
    (run,) = [s for s in in_trace if s.name == "run classify"]
    assert run.service == "jobrelay-worker"
    # Dapr hands the context to the subscriber: the delivery is its sidecar's child.
    (delivery,) = [s for s in mine if _is_delivery(s)]
    by_id = {s.span_id: s for s in spans}
    assert by_id[delivery.parent_span_id].service == "worker", by_id.get(delivery.parent_span_id)
    assert delivery.trace_id == trace_id or delivery.trace_id in run.linked_trace_ids
    # A client's poll is its own trace; it names the job and links to the job's trace.
    polls = [s for s in mine if s.name == "GET /v1/jobs/{job_id}"]
    assert polls, sorted({s.name for s in mine})
    assert all(trace_id in s.linked_trace_ids for s in polls if s.trace_id != trace_id)
    # The model calls are GenAI spans with the model and its token counts; no prompt text.
    genai = [s for s in in_trace if s.attributes.get("gen_ai.operation.name") == "embeddings"]
    assert genai, sorted({s.name for s in in_trace})
    for span in genai:
        assert span.name == f"embeddings {job['result']['model']}"
        assert span.attributes["gen_ai.request.model"] == job["result"]["model"]
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert not any("prompt" in k or "content" in k for k in span.attributes)
    assert (
        sum(s.attributes["gen_ai.usage.input_tokens"] for s in genai)
        >= (job["result"]["usage"]["prompt_tokens"])
    )


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def _scrape(client: httpx.Client, url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = client.get(f"{url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in resp.text.splitlines():
        if (match := _SAMPLE.match(line)) and line.startswith("jobrelay_"):
            labels = frozenset(
                tuple(pair.split("=", 1)) for pair in (match["labels"] or "").split(",") if pair
            )
            pairs = frozenset((k, v.strip('"')) for k, v in labels)
            samples[(match["name"], pairs)] = float(match["value"])
    return samples


def _total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= pairs)


def _model_retries(job: dict[str, Any]) -> int:
    """Calls made right after a retryable failure on the same profile in the same attempt."""
    calls = job["model_calls"]
    return sum(
        1
        for before, call in pairwise(calls)
        if before["error"]
        and (before["status_code"] or 0) >= 500
        and (before["attempt"], before["profile"]) == (call["attempt"], call["profile"])
    )


def test_metrics_count_a_mixed_run_of_successes_a_failure_and_retries(
    client: httpx.Client, stack: Stack
) -> None:
    intake, worker = stack.url("intake"), stack.url("worker")
    before_intake, before_worker = _scrape(client, intake), _scrape(client, worker)
    run = uuid.uuid4().hex
    texts = [
        f"Great product. {run}",  # succeeds
        f"Works as promised. {run}",  # succeeds
        f"Rejected. [fail:400:1] {run}",  # the model refuses it: failed at once
        f"Flaky today. [fail:500:3] {run}",  # fails on the model three times, then succeeds
    ]
    jobs = [_submit_and_finish(client, stack, classify(text)) for text in texts]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded", "failed", "succeeded"], jobs

    after_intake, after_worker = _scrape(client, intake), _scrape(client, worker)

    def delta(after: Any, before: Any, name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    task = {"task": "classify"}
    assert delta(after_intake, before_intake, "jobrelay_jobs_submitted_total", **task) == 4
    assert delta(after_worker, before_worker, "jobrelay_jobs_started_total", **task) == 4
    finished = "jobrelay_jobs_finished_total"
    assert delta(after_worker, before_worker, finished, status="succeeded", **task) == 3
    assert delta(after_worker, before_worker, finished, status="failed", **task) == 1
    redeliveries = sum(j["attempts"] - 1 for j in jobs)
    assert delta(after_worker, before_worker, "jobrelay_job_retries_total", **task) == redeliveries
    assert delta(after_worker, before_worker, "jobrelay_model_call_retries_total", **task) == sum(
        _model_retries(j) for j in jobs
    )
    # Queue wait and model time are separate histograms, each matching the job records.
    queue = "jobrelay_job_queue_wait_seconds"
    assert delta(after_worker, before_worker, f"{queue}_count", **task) == 4
    queued = sum(j["queue_seconds"] for j in jobs)
    assert abs(delta(after_worker, before_worker, f"{queue}_sum", **task) - queued) < 1e-3
    calls = [c for j in jobs for c in j["model_calls"]]
    model = "jobrelay_model_call_seconds"
    assert delta(after_worker, before_worker, f"{model}_count", **task) == len(calls)
    failed_calls = sum(1 for c in calls if c["error"])
    assert failed_calls >= 4  # the 400 and the three 500s
    assert delta(after_worker, before_worker, f"{model}_count", outcome="error", **task) == (
        failed_calls
    )
    tokens = delta(after_worker, before_worker, "jobrelay_model_tokens_total", type="input", **task)
    assert tokens >= sum(j["result"]["usage"]["prompt_tokens"] for j in jobs if j["result"])
    assert _total(after_worker, "jobrelay_model_calls_in_flight") == 0
